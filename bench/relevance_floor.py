"""Where a digest's relevance floor goes: how close a document's best passage comes to a question
it answers, and to a question it has nothing to do with, with the embedding model in use.

    python bench/relevance_floor.py

The questions are bench/retrieval_questions.json (a user's own words, each naming the document
that answers it) over bench/retrieval.py's corpus: PostgreSQL's sample configuration files and
three licences. A question's answering document is relevant; a document of the other family
(a licence for a PostgreSQL question, a PostgreSQL file for a licence question) is unrelated; a
sibling of the same family (pg_hba.conf for a postgresql.conf question) is neither, and left out.
Prints both distributions of best-passage cosine similarity and how many of each side the floor
in research.services (DIGEST_RELEVANCE_FLOOR) lets through. No database, no worker: the chunker
and the embedding model only.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.retrieval import CORPUS, QUESTIONS  # noqa: E402  (sets Django up)
from bench.support import percentile  # noqa: E402
from documents.pipeline.chunk import text_chunk  # noqa: E402
from documents.pipeline.embed import texts_embed  # noqa: E402
from documents.pipeline.extract import Page  # noqa: E402
from research.services import DIGEST_RELEVANCE_FLOOR  # noqa: E402

FAMILY = {"postgresql.conf": "postgres", "pg_hba.conf": "postgres", "GPL-3": "licence", "Apache-2.0": "licence",
          "MPL-2.0": "licence"}


def _passages(path: Path) -> np.ndarray:
    chunks = text_chunk(pages=[Page(number=None, text=path.read_text(errors="replace"))])
    return np.asarray(texts_embed([chunk.text for chunk in chunks]), dtype=np.float32)


def _line(name: str, values: list[float]) -> str:
    return (f"{name:>10}: n={len(values):3}  min {min(values):.3f}  p5 {percentile(values, 0.05):.3f}  "
            f"median {percentile(values, 0.5):.3f}  p95 {percentile(values, 0.95):.3f}  max {max(values):.3f}")


def main() -> None:
    missing = [str(path) for path in CORPUS.values() if not path.exists()]
    if missing:
        sys.exit(f"corpus files missing: {', '.join(missing)}")
    passages = {name: _passages(path) for name, path in CORPUS.items()}
    asked = np.asarray(texts_embed([question for question, _, _ in QUESTIONS]), dtype=np.float32)
    relevant, unrelated = [], []
    for vector, (_question, answering, _phrase) in zip(asked, QUESTIONS):
        for name, vectors in passages.items():
            best = float((vectors @ vector).max())  # normalised vectors: the dot product is the cosine
            if name == answering:
                relevant.append(best)
            elif FAMILY[name] != FAMILY[answering]:
                unrelated.append(best)
    print(f"best-passage cosine similarity, {len(QUESTIONS)} questions over {len(CORPUS)} documents")
    print(_line("relevant", relevant))
    print(_line("unrelated", unrelated))
    floor = DIGEST_RELEVANCE_FLOOR
    kept = sum(v >= floor for v in relevant) / len(relevant)
    cited = sum(v >= floor for v in unrelated) / len(unrelated)
    print(f"floor {floor:.2f}: keeps {kept:.0%} of relevant documents, lets {cited:.0%} of unrelated ones through")


if __name__ == "__main__":
    main()
