"""The gateway's HTTP contract, described once.

- :mod:`.models`: pydantic models of the fixed routes' bodies;
- :mod:`.session_metadata`: the validated shape of a session's ``metadata``;
- :mod:`.query`: strictly parsed query parameters;
- :mod:`.operations`: every route's operation (method, path, parameters, body, answers);
- :mod:`.bodies`: request bodies validated against their models (400 naming the path);
- :mod:`.workflow_inputs`: a served workflow's ``parameters``, validated against the
  JSON Schema its node types produce, compiled once per registered workflow;
- :mod:`.document`: the OpenAPI 3.1 document rendered from all of the above.

Handlers declare which operations they serve (``GatewayHandler.contract``) and read
their inputs through these modules, so what the document promises is what the server
checks. Nothing here imports the handlers or the gateway.
"""

__all__: list[str] = []
