FROM python:3.11-slim
WORKDIR /app
# A C compiler builds the relay's native fast path and the audit spool's writer.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md LICENSE ./
COPY jitgate ./jitgate
COPY proxy ./proxy
COPY approvals ./approvals
COPY masking ./masking
COPY bot ./bot
COPY audit ./audit
COPY store ./store
COPY guard ./guard
RUN pip install --no-cache-dir .
# The audit spool (audit.spool) lives here: mount a volume that outlives the container.
ENV XDG_STATE_HOME=/var/lib/jitgate
RUN mkdir -p /var/lib/jitgate && chown nobody /var/lib/jitgate
USER nobody
EXPOSE 8080 15432
ENTRYPOINT ["jitgate"]
CMD ["serve", "--config", "/etc/jitgate/jitgate.yaml"]
