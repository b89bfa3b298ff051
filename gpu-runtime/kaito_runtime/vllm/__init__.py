"""`kaito-vllm`: vLLM's OpenAI server with Kaito's additions, on vLLM's public extension points.

Import-light: `kaito_runtime.vllm.cli.parse_kaito_args` parses the Kaito part of a command line
without importing vLLM (the compiler's contract test runs it in the main venv). The server itself
(`kaito_runtime.vllm.server`) imports vLLM and runs in its own venv / image.
"""

__all__: list[str] = []
