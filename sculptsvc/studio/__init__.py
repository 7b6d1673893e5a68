"""`sculpt studio`: web pages to design a sculpture, inspect every order, and replay it.

A separate process from `sculpt serve` (its own worker pool, its own Kafka clients), so the
service never depends on it. ``app.create_app`` wires it; ``orders`` follows the output
topics; ``design`` holds design sessions; ``actions`` are the QA actions; ``artifacts``
serves content-addressed bytes; ``security`` holds headers, CSRF and tokens.
"""
