"""The Kafka-facing service: intake, the order processor, transactional publishing, the app."""
