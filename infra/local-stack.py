#!/usr/bin/env python3
"""The local AWS stack: moto's server on loopback, built from infra/template.yaml.

    python3 infra/local-stack.py install # create .venv with moto, samtranslator, cfn-lint, validators
    python3 infra/local-stack.py start   # install (if needed), start, create resources
    python3 infra/local-stack.py env     # print the environment for the functions
    python3 infra/local-stack.py status  # is it running?
    python3 infra/local-stack.py stop    # stop it and forget its state
    python3 infra/local-stack.py stack NAME  # one more isolated stack (tests), as JSON
    python3 infra/local-stack.py policies    # each function's IAM allowances, as JSON

One source of truth: the SAM template is transformed to CloudFormation
offline (samtranslator), the data resources moto supports are kept (tables,
queues, topics), and the stack is created in the emulator with CloudFormation
itself. What moto's CloudFormation does not create (secrets, keys, the
anchor bucket, the Cognito user pool with its groups and app client, and
the local people of infra/local-users.json) is made from the same
template's properties with each service's API. The physical names reach
the functions in the same environment variables the template sets in the
cloud.

State lives in .local/ (git-ignored): the server's pid and port, its log,
and stack.env with the variables to export.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STATE = ROOT / ".local"
TEMPLATE = ROOT / "infra" / "template.yaml"
REQUIREMENTS = ROOT / "infra" / "requirements.txt"
LOCAL_USERS = ROOT / "infra" / "local-users.json"
REGION = "us-east-1"
STACK = "optline-local"
KEEP = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::Events::EventBus"}
# Which environment variable receives which resource (as the SAM template
# does with !Ref / !GetAtt in the cloud).
ENV_FOR = {
    "OptlineTable": ("TABLE_NAME", "Ref"),
    "DispatchQueue": ("QUEUE_URL", "Ref"),
    "DispatchDeadLetterQueue": ("DLQ_URL", "Ref"),
    "OutboxDeadLetterQueue": ("OUTBOX_DLQ_URL", "Ref"),
    "TwoWaySmsTopic": ("TWO_WAY_TOPIC_ARN", "Ref"),
    "OutcomeBus": ("OUTCOME_BUS_NAME", "Ref"),
}


# Where `cargo lambda watch` serves the console locally; the local app
# client's callback and sign-out URLs are under it.
LOCAL_CONSOLE_BASE_URL = "http://127.0.0.1:9000/lambda-url/console"

# Settings the functions get locally in place of the cloud's. The values
# are for local use only.
LOCAL_FUNCTION_ENV = {
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "PUBLIC_BASE_URL": "http://127.0.0.1:9000/lambda-url/inbound",
    "CONSOLE_BASE_URL": LOCAL_CONSOLE_BASE_URL,
    "PROGRAM_ID": "clinic",
    "PROGRAM_NAME": "Riverside Clinic",
    "PROGRAM_SUPPORT": "555-0100",
    "RUST_LOG": "info",
}


# Secrets whose cloud value the deployer puts after the first deploy: their
# local values (for local use only). The Twilio secret holds the local
# auth token and one Webhooks SharedKey.
LOCAL_SECRET_VALUES = {
    "EhrSourcesSecret": {"local-ehr": {"hmac_sha256_secret": "local-ehr-hmac-secret"}},
    "WebhookSubscribersSecret": {},
    "TwilioSecret": {
        "auth_token": "local-twilio-auth-token",
        "webhook_keys": {"webhooks_sharedkey_local": "local-twilio-shared-key"},
    },
}


def log(msg: str) -> None:
    print(f"[local-stack] {msg}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Creates .venv and installs the pinned packages when they are missing."""
    marker = VENV / ".optline-requirements"
    wanted = REQUIREMENTS.read_text()
    if venv_python().exists() and marker.exists() and marker.read_text() == wanted:
        return
    if not venv_python().exists():
        log("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log("installing moto, aws-sam-translator, cfn-lint and the fixture validators into .venv")
    subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )
    marker.write_text(wanted)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_state() -> dict | None:
    path = STATE / "server.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def alive(state: dict | None) -> bool:
    """The recorded server process exists and accepts connections.

    Cheap on purpose: /moto-api/data.json serializes every resource, which
    grows slow as tests fill the emulator.
    """
    if not state:
        return False
    try:
        os.kill(state["pid"], 0)
    except (ProcessLookupError, PermissionError, KeyError):
        return False
    try:
        with socket.create_connection(("127.0.0.1", state["port"]), timeout=2):
            return True
    except OSError:
        return False


def http_ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/reset-auth", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


def cloudformation_template() -> dict:
    """SAM -> CloudFormation offline, then only the data resources."""
    cfn = transformed_template()
    kept = {name: r for name, r in cfn["Resources"].items() if r["Type"] in KEEP}
    # moto's server ignores DeletionProtection; keep the template's properties otherwise.
    outputs = {}
    for name in kept:
        outputs[f"{name}Ref"] = {"Value": {"Ref": name}}
        if kept[name]["Type"] == "AWS::Events::EventBus":
            # moto's Ref of an event bus is not its name (AWS's is); read
            # the name attribute instead.
            outputs[f"{name}Ref"] = {"Value": {"Fn::GetAtt": [name, "Name"]}}
        if kept[name]["Type"] == "AWS::SQS::Queue":
            outputs[f"{name}Arn"] = {"Value": {"Fn::GetAtt": [name, "Arn"]}}
        if kept[name].get("Properties", {}).get("StreamSpecification"):
            outputs[f"{name}Stream"] = {"Value": {"Fn::GetAtt": [name, "StreamArn"]}}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": kept, "Outputs": outputs}


@functools.lru_cache(maxsize=1)
def transformed_template() -> dict:
    """The whole SAM template as CloudFormation, transformed offline."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.transform import transform  # type: ignore
    from samtranslator.yaml_helper import yaml_parse  # type: ignore

    class NoManagedPolicies:
        def load(self):
            return {}

    sam = yaml_parse(TEMPLATE.read_text())
    for resource in sam.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://local-placeholder/code.zip"
    return transform(sam, {}, NoManagedPolicies())


def symbolic_resource(value) -> str:
    """A policy resource by the template's names: `OptlineTable` for the
    table's ARN, `OptlineTable/index/due` for its index, `*` for any."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".")[0]
        if "Ref" in value:
            return value["Ref"]
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            text = text[0] if isinstance(text, list) else text
            import re

            return re.sub(r"\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}", r"\1", text)
    return json.dumps(value)


def function_policies() -> dict:
    """Each function's allowed (action, resource) pairs, from the inline
    policies SAM gives its role. A `NotResource` statement allows `*` (the
    template uses it for SNS's publish to phone numbers)."""
    cfn = transformed_template()
    resources = cfn["Resources"]
    allowed = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resource["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0]
        pairs = []
        for policy in resources.get(role, {}).get("Properties", {}).get("Policies", []):
            for statement in policy["PolicyDocument"].get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if "NotResource" in statement:
                    targets = ["*"]
                else:
                    targets = statement.get("Resource", [])
                    targets = targets if isinstance(targets, list) else [targets]
                for action in actions:
                    for target in targets:
                        pairs.append([action, symbolic_resource(target)])
        allowed[name] = pairs
    return allowed


def create_stack(endpoint: str, name: str = STACK) -> dict:
    import boto3  # type: ignore

    cfn = boto3.client(
        "cloudformation", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    template = cloudformation_template()
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    for _ in range(50):
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if stack["StackStatus"].endswith("_COMPLETE"):
            break
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise SystemExit(f"stack creation ended in {stack['StackStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    apply_time_to_live(endpoint, template, outputs)
    env = create_outside_cloudformation(endpoint, name)
    for logical, (var, _) in ENV_FOR.items():
        value = outputs.get(f"{logical}Ref")
        if value:
            env[var] = value
    # The table's stream, which the outbox drain consumes (tests read it
    # as Lambda's event source mapping would).
    if outputs.get("OptlineTableStream"):
        env["TABLE_STREAM_ARN"] = outputs["OptlineTableStream"]
    return env


# Resources moto's CloudFormation does not create (or not whole), made from
# the same template's properties with the service's own API, and the
# variable each function receives them in (as !Ref does in the cloud).
OUTSIDE_CLOUDFORMATION = {
    "TwilioSecret": "TWILIO_SECRET_ARN",
    "EhrSourcesSecret": "EHR_SOURCES_SECRET_ARN",
    "WebhookSubscribersSecret": "WEBHOOK_SUBSCRIBERS_SECRET_ARN",
    "AuditKeySecret": "AUDIT_KEY_SECRET_ARN",
    "AuditSigningKey": "AUDIT_SIGNING_KEY_ID",
    "AuditAnchorBucket": "ANCHOR_BUCKET",
    # The pool also gets the template's groups and infra/local-users.json's people.
    "UserPool": "USER_POOL_ID",
    "UserPoolClient": "USER_POOL_CLIENT_ID",
}


def create_outside_cloudformation(endpoint: str, stack: str) -> dict:
    import boto3  # type: ignore

    kw = dict(
        endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    resources = transformed_template()["Resources"]
    env = {}
    made = {}  # logical id -> physical id, for !Ref between these resources
    cognito = None  # one client for the pool, its groups, people and app client
    for logical, var in OUTSIDE_CLOUDFORMATION.items():
        resource = resources.get(logical)
        if resource is None:
            continue
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::SecretsManager::Secret":
            client = boto3.client("secretsmanager", **kw)
            spec = props.get("GenerateSecretString", {})
            if logical in LOCAL_SECRET_VALUES:
                value = json.dumps(LOCAL_SECRET_VALUES[logical])
            else:
                value = client.get_random_password(
                    PasswordLength=int(spec.get("PasswordLength", 64)),
                    ExcludePunctuation=bool(spec.get("ExcludePunctuation", True)),
                )["RandomPassword"]
                if "GenerateStringKey" in spec:
                    shape = json.loads(spec.get("SecretStringTemplate", "{}"))
                    shape[spec["GenerateStringKey"]] = value
                    value = json.dumps(shape)
            secret = client.create_secret(Name=f"{stack}-{logical}", SecretString=value)
            env[var] = secret["ARN"]
        elif kind == "AWS::KMS::Key":
            client = boto3.client("kms", **kw)
            key = client.create_key(
                KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
                KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
                Description=str(props.get("Description", logical)),
            )
            env[var] = key["KeyMetadata"]["KeyId"]
        elif kind == "AWS::S3::Bucket":
            client = boto3.client("s3", **kw)
            bucket = f"{stack}-{logical}".lower()[:50] + "-" + hashlib.sha1(stack.encode()).hexdigest()[:8]
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
            lock = props.get("ObjectLockConfiguration")
            if lock:
                rule = lock.get("Rule", {}).get("DefaultRetention", {})
                days = rule.get("Days")
                retention = {"Mode": rule.get("Mode", "COMPLIANCE"),
                             "Days": int(days) if isinstance(days, (int, str)) and str(days).isdigit() else 1}
                client.put_object_lock_configuration(
                    Bucket=bucket,
                    ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
                )
            env[var] = bucket
        elif kind == "AWS::Cognito::UserPool":
            cognito = cognito or boto3.client("cognito-idp", **kw)
            env[var] = made[logical] = create_user_pool(cognito, stack, logical, props, resources)
        elif kind == "AWS::Cognito::UserPoolClient":
            cognito = cognito or boto3.client("cognito-idp", **kw)
            pool = made[props["UserPoolId"]["Ref"]]
            env[var] = create_user_pool_client(cognito, stack, logical, pool, props)
    return env


# CreateUserPool arguments that the template's UserPool properties give as
# they are (the CloudFormation names are the API's).
USER_POOL_PROPERTIES = (
    "Policies", "Schema", "AdminCreateUserConfig", "AutoVerifiedAttributes",
    "UsernameConfiguration", "AccountRecoverySetting",
)


def create_user_pool(cognito, stack: str, logical: str, props: dict, resources: dict) -> str:
    """The template's user pool, its groups and the local people
    (infra/local-users.json), each with their groups and a permanent
    password. Named after the stack, so stacks never share a pool."""
    pool = cognito.create_user_pool(
        PoolName=f"{stack}-{logical}",
        **{k: props[k] for k in USER_POOL_PROPERTIES if k in props},
        # MFA off locally, whatever UserPoolMfa says: with it on, moto
        # answers a password sign-in with an MFA challenge (and the local
        # tools and tests have no authenticator app).
        MfaConfiguration="OFF",
    )["UserPool"]["Id"]
    for resource in resources.values():
        group = resource.get("Properties", {})
        if resource["Type"] == "AWS::Cognito::UserPoolGroup" and group.get("UserPoolId") == {"Ref": logical}:
            cognito.create_group(
                UserPoolId=pool, GroupName=group["GroupName"], Description=group.get("Description", ""),
            )
    people = json.loads(LOCAL_USERS.read_text())
    for person in people["users"]:
        username = person["username"]
        cognito.admin_create_user(
            UserPoolId=pool,
            Username=username,
            UserAttributes=[
                {"Name": "name", "Value": person["name"]},
                {"Name": "email", "Value": f"{username}@example.test"},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
        cognito.admin_set_user_password(
            UserPoolId=pool, Username=username, Password=people["password"], Permanent=True,
        )
        for group in person.get("groups", []):
            cognito.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=group)
    return pool


# CreateUserPoolClient arguments the template's client gives as they are.
USER_POOL_CLIENT_PROPERTIES = (
    "GenerateSecret", "ExplicitAuthFlows", "AllowedOAuthFlowsUserPoolClient", "AllowedOAuthFlows",
    "AllowedOAuthScopes", "SupportedIdentityProviders", "PreventUserExistenceErrors",
    "EnableTokenRevocation", "IdTokenValidity", "AccessTokenValidity", "RefreshTokenValidity",
    "TokenValidityUnits", "ReadAttributes", "WriteAttributes",
)


def local_console_url(value) -> str:
    """A callback or sign-out URL of the template (`https://${ApiDomainName}/console/…`)
    under the local console instead."""
    import re

    text = value.get("Fn::Sub", "") if isinstance(value, dict) else str(value)
    text = text[0] if isinstance(text, list) else text
    return LOCAL_CONSOLE_BASE_URL + re.sub(r"^https://(\$\{[^}]+\}|[^/]+)", "", text)


def create_user_pool_client(cognito, stack: str, logical: str, pool: str, props: dict) -> str:
    args = {k: props[k] for k in USER_POOL_CLIENT_PROPERTIES if k in props}
    # Local tools and tests sign in with a password (the cloud's client
    # allows SRP only).
    args["ExplicitAuthFlows"] = list(dict.fromkeys(
        [*args.get("ExplicitAuthFlows", []), "ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    ))
    for key in ("CallbackURLs", "LogoutURLs"):
        if key in props:
            args[key] = [local_console_url(url) for url in props[key]]
    return cognito.create_user_pool_client(
        UserPoolId=pool, ClientName=f"{stack}-{logical}", **args,
    )["UserPoolClient"]["ClientId"]


def apply_time_to_live(endpoint: str, template: dict, outputs: dict) -> None:
    """moto's CloudFormation ignores a table's TimeToLiveSpecification; apply
    it from the same template so the local table matches the cloud's."""
    import boto3  # type: ignore

    dynamodb = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    for logical, resource in template.get("Resources", {}).items():
        spec = resource.get("Properties", {}).get("TimeToLiveSpecification")
        table = outputs.get(f"{logical}Ref")
        if resource.get("Type") == "AWS::DynamoDB::Table" and spec and table:
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={
                    "AttributeName": spec["AttributeName"],
                    "Enabled": bool(spec.get("Enabled", True)),
                },
            )


def base_env(endpoint: str) -> dict:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def start() -> dict:
    STATE.mkdir(exist_ok=True)
    state = read_state()
    if alive(state):
        log(f"already running at {state['endpoint']}")
        return state
    ensure_venv()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    logfile = open(STATE / "moto.log", "ab")
    proc = subprocess.Popen(
        # moto's server, with DynamoDB's per-item atomicity (see moto_serve.py).
        [str(venv_python()), str(ROOT / "infra" / "moto_serve.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
    )
    state = {"pid": proc.pid, "port": port, "endpoint": endpoint}
    for _ in range(100):
        if alive(state) and http_ready(endpoint):
            break
        if proc.poll() is not None:
            raise SystemExit("moto_server exited at start; see .local/moto.log")
        time.sleep(0.1)
    else:
        raise SystemExit("moto_server did not answer within 10 s; see .local/moto.log")
    env = base_env(endpoint) | create_stack(endpoint)
    state["env"] = env
    (STATE / "server.json").write_text(json.dumps(state, indent=2))
    (STATE / "stack.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    # For `cargo lambda watch --env-file .local/lambda.env`: the stack plus
    # local-only settings (the local console's URL, a Twilio test account).
    local = env | LOCAL_FUNCTION_ENV
    (STATE / "lambda.env").write_text("".join(f"{k}=\"{v}\"\n" for k, v in local.items()))
    log(f"moto running at {endpoint}; resources created from infra/template.yaml")
    people = json.loads(LOCAL_USERS.read_text())
    log(f"local users in the emulator's Cognito pool {env.get('USER_POOL_ID', '?')} "
        f"(password {people['password']}; a token: infra/local-token.sh USER):")
    for person in people["users"]:
        log(f"  {person['username']:<16} {person['name']:<16} {', '.join(person['groups'])}")
    return state


def stop_console() -> None:
    """Stops the console the main job left running (.local/console.pid)."""
    pidfile = STATE / "console.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pidfile.unlink(missing_ok=True)


def stop() -> None:
    stop_console()
    state = read_state()
    if state:
        try:
            os.killpg(state["pid"], 15)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(50):
            try:
                os.kill(state["pid"], 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        log("stopped")
    for name in ("server.json", "stack.env", "lambda.env"):
        (STATE / name).unlink(missing_ok=True)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    # Run inside the project's venv, which has boto3 and samtranslator.
    if command in ("start", "template", "stack", "policies") and Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv()
        os.execv(str(venv_python()), [str(venv_python()), __file__, *sys.argv[1:]])
    if command == "start":
        start()
        print((STATE / "stack.env").read_text(), end="")
    elif command == "env":
        state = read_state()
        if not alive(state):
            raise SystemExit("the local stack is not running: python3 infra/local-stack.py start")
        print((STATE / "stack.env").read_text(), end="")
    elif command == "install":
        ensure_venv()
    elif command == "status":
        state = read_state()
        print("running" if alive(state) else "stopped")
    elif command == "stop":
        stop()
    elif command == "stack":
        # A fresh, isolated set of resources (tests create one each), in the
        # running emulator or in the one at OPTLINE_EMULATOR_ENDPOINT (a
        # test's private emulator).
        endpoint = os.environ.get("OPTLINE_EMULATOR_ENDPOINT")
        if not endpoint:
            state = read_state()
            if not alive(state):
                raise SystemExit("the local stack is not running: python3 infra/local-stack.py start")
            endpoint = state["endpoint"]
        name = sys.argv[2] if len(sys.argv) > 2 else f"optline-{os.getpid()}"
        print(json.dumps(create_stack(endpoint, name)))
    elif command == "policies":
        print(json.dumps(function_policies(), indent=2, sort_keys=True))
    elif command == "template":
        print(json.dumps(cloudformation_template(), indent=2))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
