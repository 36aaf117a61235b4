"""The API server (internal): the request pipeline, resource storage semantics, watch caches, discovery and OpenAPI."""
