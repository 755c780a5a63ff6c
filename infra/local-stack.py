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
the local people of infra/local-users.json; the alarms, the operations
dashboard and the operators' subscription) is made from the same
template's properties with each service's API, their intrinsic functions
resolved against the stack (docs/dashboard-and-alarms.md). A reference to
a resource the local stack does not hold (a function, a key) becomes a
stand-in name, `<stack>-<logical id>`. The physical names reach the
functions in the same environment variables the template sets in the
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
    # moto's server ignores DeletionProtection; keep the template's properties
    # otherwise, with stand-ins for what they name that is not kept (the
    # operators' topic's key).
    dropped = set(cfn["Resources"]) - set(kept)
    kept = {name: stand_ins(r, dropped) for name, r in kept.items()}
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
    # The attributes that what is made outside CloudFormation reads (a
    # queue's name in an alarm's dimension and on the dashboard).
    for name, attribute in sorted(attributes_named(outside_resources(cfn))):
        if name in kept:
            outputs[f"{name}{attribute}"] = {"Value": {"Fn::GetAtt": [name, attribute]}}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": kept, "Outputs": outputs}


def stand_in(stack: str, logical: str) -> str:
    """The local name of a resource the local stack does not hold."""
    return f"{stack}-{logical}"


def stand_ins(value, dropped: set):
    """`value` with its references to the `dropped` resources replaced by
    their stand-in names (resolved by CloudFormation's own Fn::Sub)."""
    import re

    named = "${AWS::StackName}-%s"
    if isinstance(value, list):
        return [stand_ins(v, dropped) for v in value]
    if not isinstance(value, dict):
        return value
    if list(value) == ["Ref"] and value["Ref"] in dropped:
        return {"Fn::Sub": named % value["Ref"]}
    if list(value) == ["Fn::GetAtt"]:
        target = value["Fn::GetAtt"]
        target = target if isinstance(target, list) else str(target).split(".", 1)
        if target[0] in dropped:
            return {"Fn::Sub": named % target[0]}
    if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return {"Fn::Sub": re.sub(
            r"\$\{([A-Za-z0-9]+)(\.[A-Za-z.]+)?\}",
            lambda m: named % m.group(1) if m.group(1) in dropped else m.group(0),
            value["Fn::Sub"],
        )}
    return {k: stand_ins(v, dropped) for k, v in value.items()}


def attributes_named(value) -> set:
    """Every (logical id, attribute) that `value` reads with Fn::GetAtt or
    `${Name.Attribute}` in Fn::Sub."""
    import re

    found = set()
    if isinstance(value, list):
        for v in value:
            found |= attributes_named(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Fn::GetAtt":
                target = v if isinstance(v, list) else str(v).split(".", 1)
                found.add((target[0], target[1]))
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\.([A-Za-z.]+)\}", text))
                if isinstance(v, list):
                    found |= attributes_named(v[1:])
            else:
                found |= attributes_named(v)
    return found


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
    create_by_type(endpoint, name, outputs)
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


# Resource types made after the stack with their service's API, in this
# order (the dashboard shows the alarms, so it comes after them): moto's
# CloudFormation makes no alarms, and the dashboard's body names resources
# the local stack's CloudFormation does not hold (the functions, the alarms).
OUTSIDE_TYPES = ("AWS::SNS::Subscription", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard")
# moto's account.
ACCOUNT = "123456789012"


def outside_resources(cfn: dict) -> dict:
    resources = cfn["Resources"].items()
    ordered = sorted(resources, key=lambda item: OUTSIDE_TYPES.index(item[1]["Type"])
                     if item[1]["Type"] in OUTSIDE_TYPES else len(OUTSIDE_TYPES))
    return {name: r for name, r in ordered if r["Type"] in OUTSIDE_TYPES}


NO_VALUE = object()


class Intrinsics:
    """A template value's intrinsic functions (Ref, Fn::GetAtt, Fn::Sub,
    Fn::If, Fn::Join and the condition functions) resolved for one local
    stack: parameters take their defaults; resources take the stack's
    outputs, what was made outside CloudFormation (`made`: logical id ->
    {"Ref": …, attribute: …}), or else their stand-in names."""

    def __init__(self, cfn: dict, stack: str, outputs: dict, made: dict):
        self.cfn, self.stack, self.outputs, self.made = cfn, stack, outputs, made
        self.pseudo = {
            "AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE,
        }

    def ref(self, name: str):
        if name in self.pseudo:
            return self.pseudo[name]
        parameter = self.cfn.get("Parameters", {}).get(name)
        if parameter is not None:
            if "Default" not in parameter:
                raise SystemExit(f"{name} has no default to build the local stack with")
            return str(parameter["Default"])
        return self.attribute(name, "Ref")

    def attribute(self, name: str, attribute: str):
        key = f"{name}{attribute}"
        if key in self.outputs:
            return self.outputs[key]
        if attribute in self.made.get(name, {}):
            return self.made[name][attribute]
        if name in self.cfn["Resources"] and self.cfn["Resources"][name]["Type"] not in KEEP:
            return stand_in(self.stack, name)
        raise SystemExit(f"the local stack cannot resolve {name}.{attribute}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.cfn.get("Conditions", {})[name]))

    def sub(self, text: str, variables: dict) -> str:
        import re

        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.attribute(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value):
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                target = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attribute(target[0], target[1])
            if fn == "Fn::Sub":
                text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})
                return self.sub(text, variables)
            if fn == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Condition":
                return self.condition(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


# PutMetricAlarm wants numbers and flags where the template's parameters
# give strings.
ALARM_INTEGERS = ("EvaluationPeriods", "DatapointsToAlarm", "Period")


def alarm_arguments(props: dict) -> dict:
    args = dict(props)
    for key in ALARM_INTEGERS:
        if key in args:
            args[key] = int(args[key])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    for query in args.get("Metrics", []):
        for key in ("Period",):
            if key in query:
                query[key] = int(query[key])
        if "MetricStat" in query:
            query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        if "ReturnData" in query:
            query["ReturnData"] = str(query["ReturnData"]).lower() == "true"
    return args


def create_by_type(endpoint: str, stack: str, outputs: dict) -> None:
    """The template's alarms, dashboard and subscriptions (those whose
    condition holds with the parameters' defaults), made with the service
    APIs from their resolved properties."""
    import boto3  # type: ignore

    kw = dict(
        endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    cfn = transformed_template()
    made: dict = {}
    intrinsics = Intrinsics(cfn, stack, outputs, made)
    cloudwatch = boto3.client("cloudwatch", **kw)
    sns = boto3.client("sns", **kw)
    counts: dict = {}
    for logical, resource in outside_resources(cfn).items():
        if "Condition" in resource and not intrinsics.condition(resource["Condition"]):
            continue
        props = intrinsics.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::CloudWatch::Alarm":
            props.setdefault("AlarmName", stand_in(stack, logical))
            cloudwatch.put_metric_alarm(**alarm_arguments(props))
            alarm = cloudwatch.describe_alarms(AlarmNames=[props["AlarmName"]])["MetricAlarms"][0]
            made[logical] = {"Ref": props["AlarmName"], "Arn": alarm["AlarmArn"]}
        elif kind == "AWS::CloudWatch::Dashboard":
            name = props.get("DashboardName") or stand_in(stack, logical)
            json.loads(props["DashboardBody"])  # CloudWatch refuses a body that is not JSON
            cloudwatch.put_dashboard(DashboardName=name, DashboardBody=props["DashboardBody"])
            made[logical] = {"Ref": name}
        elif kind == "AWS::SNS::Subscription":
            if props["Protocol"] == "lambda":
                continue  # no functions locally: the tests invoke the handlers themselves
            arn = sns.subscribe(
                TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
            )["SubscriptionArn"]
            made[logical] = {"Ref": arn}
        counts[kind] = counts.get(kind, 0) + 1
    made_list = ", ".join(f"{n} {kind.split('::')[-1]}" for kind, n in counts.items())
    log(f"{stack}: made outside CloudFormation from the template: {made_list or 'nothing'}")


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
