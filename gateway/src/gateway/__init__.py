"""GraphQL gateway: strawberry on Starlette over the retail gRPC services."""
