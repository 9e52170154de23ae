#!/usr/bin/env bash
# Write .env for docker compose from .env.example, with fresh local secrets:
#   AIRFLOW_FERNET_KEY and AIRFLOW_JWT_SECRET generated, every `change-me` password replaced by a
#   random one, AIRFLOW_UID set to your user id. An existing .env is never overwritten.
#
#   docker/make-env.sh            # in the repository root
set -euo pipefail
cd "$(dirname "$0")/.."

[ -e .env ] && { echo ".env already exists: edit it, or remove it and rerun"; exit 0; }
command -v python3 >/dev/null || { echo "python3 is needed to generate the keys (or: cp .env.example .env and fill it in by hand)" >&2; exit 1; }

python3 - "$(id -u)" <<'PY'
import base64, os, re, secrets, sys

uid = sys.argv[1]
generated = {
    "AIRFLOW_FERNET_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_hex(32),
    "AIRFLOW_UID": lambda: uid,
}
out = []
for line in open(".env.example").read().splitlines():
    m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line)
    if m:
        name, value = m.groups()
        if name in generated:
            value = generated[name]()
        elif value == "change-me":
            value = secrets.token_hex(16)  # hex: safe inside connection URIs
        line = f"{name}={value}"
    out.append(line)
fd = os.open(".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote .env (keys generated, passwords randomised; AIRFLOW_ADMIN_PASSWORD is your login)")
PY
