"""Redis Streams runtime: consumer groups with at-least-once delivery and exactly-once effects."""
