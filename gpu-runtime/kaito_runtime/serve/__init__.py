"""`kaito-serve`: Kaito-compatible /chat + OpenAI-compatible inference server with batching.

Nothing heavy is imported here; `kaito_runtime.serve.app.create_app` is the factory and
`kaito_runtime.serve.cli.main` the console script.
"""

__all__: list[str] = []
