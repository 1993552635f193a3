"""newsframe: entity and framing models for news articles."""
