"""HTTP plumbing: plain ASGI middleware and endpoints around the GraphQL view."""
