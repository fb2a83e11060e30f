"""consumer: the streaming worker that turns Kafka ticks into bull-flag signals."""
