"""The server's pure rules: no database session, no SQLAlchemy, no I/O.

- :mod:`.refusals`: why a license or an activation is refused (one copy,
  used by the ORM services and the validation fast path alike);
- :mod:`.terms`: license kinds and the rules of a license's term;
- :mod:`.seats`: seat modes and the bounds of a product's seat policy;
- :mod:`.tokens`: what a license token says (:class:`.tokens.TokenFacts`);
- :mod:`.json_shape`: the shape a JSON body or stored document may have
  (UTF-8, containers, members, depth), checked on bytes before parsing.

The services apply these rules to rows; the rules never read or write rows.
"""
