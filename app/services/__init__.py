"""Services: the engine's decisions applied to the database, one module per concern."""
