FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY jitgate ./jitgate
COPY proxy ./proxy
COPY approvals ./approvals
COPY masking ./masking
COPY bot ./bot
COPY audit ./audit
COPY store ./store
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8080 15432
ENTRYPOINT ["jitgate"]
CMD ["serve", "--config", "/etc/jitgate/jitgate.yaml"]
