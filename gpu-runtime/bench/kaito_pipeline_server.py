"""Benchmark anchor (not part of the runtime): a Kaito seed-era style transformers server.

Kaito's transformers runtime up to v0.8.1 (`presets/workspace/inference/text-generation/inference_api.py`,
KAITO.md §7.1 "Historical API") builds one `transformers.pipeline("text-generation")` at start and runs
every `POST /chat` request through one pipeline call in a plain (sync) FastAPI endpoint, so FastAPI's
thread pool runs concurrent requests side by side on the same model, with no batching. The body is
`{"prompt", "return_full_text", "clean_up_tokenization_spaces", "generate_kwargs": {...}}` with the
generate kwargs merged over the model's GenerationConfig; the answer is `{"Result": "<text>"}`.
This is that shape, reduced to what the benchmark sends; it runs on our pinned transformers (Kaito's
own legacy file needs transformers 4.x, RUNTIME.md 7b).

  python gpu-runtime/bench/kaito_pipeline_server.py --model DIR --port 5000
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline


class ChatRequest(BaseModel):
    prompt: str | None = None
    return_full_text: bool = True
    clean_up_tokenization_spaces: bool = False
    generate_kwargs: dict[str, Any] = Field(default_factory=dict)


def build_app(model_dir: str) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    base_config = model.generation_config.to_dict()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "Healthy"}

    @app.post("/chat")
    def generate_text(params: ChatRequest) -> dict[str, str]:
        if params.prompt is None:
            raise HTTPException(status_code=400, detail="Text generation parameter prompt required")
        # Kaito's defaults (max_length 200, do_sample true, top_k 10, ...) under the request's kwargs.
        kwargs = {"max_length": 200, "do_sample": True, "top_k": 10, **params.generate_kwargs}
        config = GenerationConfig(**{**base_config, **kwargs})
        with torch.inference_mode():
            sequences = pipe(
                params.prompt,
                return_full_text=params.return_full_text,
                clean_up_tokenization_spaces=params.clean_up_tokenization_spaces,
                generation_config=config,
            )
        return {"Result": str(sequences[0]["generated_text"])}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args()
    uvicorn.run(build_app(args.model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
