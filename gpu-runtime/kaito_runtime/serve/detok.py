"""Incremental detokenisation with stop strings.

Decoding token by token breaks multi-byte characters and some merges, so text is
released only once it is stable (the usual prefix/read offset scheme), and any tail that
could still grow into a stop string is held back until it cannot.
"""

from __future__ import annotations

from typing import Any


class TextTracker:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self._tok = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self.text = ""
        self._emitted = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def add(self, token_id: int) -> None:
        """Append one generated token (never eos: the engine stops before adding it)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._append(new_text[len(prefix_text) :])
            self._prefix, self._read = self._read, len(self._ids)

    def finish(self) -> None:
        """Flush whatever is left undecoded (e.g. a dangling partial character)."""
        if not self.stopped and self._read < len(self._ids):
            prefix_text = self._decode(self._ids[self._prefix : self._read])
            new_text = self._decode(self._ids[self._prefix :])
            if len(new_text) > len(prefix_text):
                self._append(new_text[len(prefix_text) :])
            self._read = len(self._ids)

    def _append(self, delta: str) -> None:
        if self.stopped:
            return
        start = max(0, len(self.text) - max((len(s) for s in self._stop), default=0))
        self.text += delta
        if self._stop:
            hits = [i for i in (self.text.find(s, start) for s in self._stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True

    def take(self, final: bool = False) -> str:
        """Text that is safe to send now; with final=True everything left."""
        end = len(self.text)
        if not final and not self.stopped and self._stop:
            end -= self._holdback()
        if end <= self._emitted:
            return ""
        out = self.text[self._emitted : end]
        self._emitted = end
        return out

    def _holdback(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        best = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best
