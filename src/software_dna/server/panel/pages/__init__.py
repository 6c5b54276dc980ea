"""The panel's pages, one module per noun; each module has a ``router`` (prefix ``/panel``)."""
