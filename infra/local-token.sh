#!/usr/bin/env bash
# Prints the ID token of a local user (infra/local-users.json), signed in to
# the running local stack's Cognito user pool with the local-only password:
#   AUTH="authorization: Bearer $(infra/local-token.sh ana.compliance)"
set -euo pipefail
cd "$(dirname "$0")/.."
user="${1:?usage: infra/local-token.sh USERNAME (see infra/local-users.json)}"
eval "$(python3 infra/local-stack.py env)"
OPTLINE_USER="$user" .venv/bin/python - <<'PY'
import json, os, boto3
users = json.load(open("infra/local-users.json"))
client = boto3.client("cognito-idp", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")
answer = client.initiate_auth(
    ClientId=os.environ["USER_POOL_CLIENT_ID"], AuthFlow="USER_PASSWORD_AUTH",
    AuthParameters={"USERNAME": os.environ["OPTLINE_USER"], "PASSWORD": users["password"]})
print(answer["AuthenticationResult"]["IdToken"])
PY
