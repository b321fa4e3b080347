"""One HTTP request to a local AWS double, as the IAM (action, resource) pairs AWS would authorize.

The caller is the access key of the request's SigV4 credential scope (each local function signs
with its own deployed name as key, as a Lambda function signs with its role's credentials); the
region and the service (the signing name: `dynamodb`, `s3`, `bedrock`, `lambda`) come from the same
scope. One request can need several permissions and is allowed only if every one is:

- DynamoDB authorizes each item of a transaction as its underlying action on that item's table:
  `TransactWriteItems` as `PutItem`, `UpdateItem`, `DeleteItem` or `ConditionCheckItem`,
  `TransactGetItems` as `GetItem` (there is no `dynamodb:TransactWriteItems` action). The batch
  operations keep their own action, `BatchGetItem` / `BatchWriteItem`, once per table. A request
  naming an index is authorized on the index ARN, not the table's.
- S3 authorizes `HeadObject` as `s3:GetObject`, `HeadBucket` and listing as `s3:ListBucket` on the
  bucket, a copy as `s3:PutObject` on the target and `s3:GetObject` on the source.
- Bedrock authorizes `Converse`/`InvokeModel` as `bedrock:InvokeModel` and the streaming calls as
  `bedrock:InvokeModelWithResponseStream`. A cross-Region inference profile needs the action on
  the profile and on its foundation model (a global profile also on the Region-less model ARN).
- Lambda authorizes `Invoke` as `lambda:InvokeFunction` on the function ARN (qualified if the call
  names a version or alias).
- DynamoDB Streams (signed as `dynamodb`) authorizes `DescribeStream` and `GetShardIterator` on the stream
  ARN, `GetRecords` on the stream its shard iterator belongs to (an iterator starts with the stream's ARN),
  and `ListStreams` on `*` (it has no resource of its own).
- SQS authorizes each operation as its own action on the queue ARN (from the queue URL or name); the batch
  operations as their single-message actions (`SendMessageBatch` as `sqs:SendMessage`).

A request this module cannot map gets the action `<service>:unmapped`: no policy names it, so a
function that makes it is denied rather than waved through.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from infra.bedrock import split_profile

ACCOUNT_ID = "123456789012"  # moto's default account: the ARNs moto itself hands out
DEFAULT_REGION = "us-east-1"
ANONYMOUS = "anonymous"  # the caller of an unsigned request
UNMAPPED = "unmapped"

_CREDENTIAL = re.compile(
    r"(?P<key>[^/,\s]+)/\d{8}/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)/aws4_request",
)


@dataclass(frozen=True)
class Signature:
    caller: str
    region: str
    service: str | None  # None when the request says nothing about it (unsigned, SigV2)


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str


@dataclass(frozen=True)
class AwsRequest:
    """What AWS would authorize for one request, and on whose behalf."""

    caller: str
    region: str
    service: str
    operation: str
    permissions: tuple[Permission, ...]
    trace: str = ""  # the invocation's trace root: botocore sends `X-Amzn-Trace-Id` from `_X_AMZN_TRACE_ID`
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # one per HTTP request
    item_key: str = ""  # DynamoDB: the item a single-item request names (`dynamodb_item_key`)


def signature_of(authorization: str | None, query: str = "") -> Signature:
    """The caller, region and signing name of a SigV4 header or presigned URL; else anonymous."""
    if authorization and authorization.startswith("AWS4-HMAC-SHA256"):
        match = re.search(r"Credential=" + _CREDENTIAL.pattern, authorization)
        if match:
            return Signature(match["key"], match["region"], match["service"])
    if authorization and authorization.startswith("AWS "):
        return Signature(authorization[4:].split(":", 1)[0], DEFAULT_REGION, None)
    credential = _query(query).get("X-Amz-Credential", "")
    match = _CREDENTIAL.fullmatch(credential)
    if match:
        return Signature(match["key"], match["region"], match["service"])
    return Signature(ANONYMOUS, DEFAULT_REGION, None)


def describe(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    *,
    service: str | None = None,
    account: str = ACCOUNT_ID,
) -> AwsRequest:
    """One request (`target` is the raw request target, path and query) as what AWS authorizes.

    `service` is the signing name this endpoint serves, for unsigned requests; moto's endpoint serves
    several, so there it is inferred: a JSON target header means DynamoDB, anything else S3.
    """
    headers = {name.lower(): value for name, value in headers.items()}
    split = urlsplit(target)
    signature = signature_of(headers.get("authorization"), split.query)
    region = signature.region
    name = signature.service or service or ("dynamodb" if "x-amz-target" in headers else "s3")
    mapped: tuple[str, list[Permission]] | None = None
    if name == "dynamodb":
        mapped = dynamodb_permissions(headers.get("x-amz-target", ""), body, region=region, account=account)
    elif name == "s3":
        mapped = s3_permissions(method, split.path, split.query, headers)
    elif name == "bedrock":
        mapped = bedrock_permissions(method, split.path, region=region, account=account)
    elif name == "lambda":
        mapped = lambda_permissions(method, split.path, split.query, region=region, account=account)
    elif name == "sqs":
        mapped = sqs_permissions(headers.get("x-amz-target", ""), body, region=region, account=account)
    if mapped is None:
        mapped = UNMAPPED, [Permission(f"{name}:{UNMAPPED}", f"{method} {split.path}")]
    operation, permissions = mapped
    trace = trace_root(headers.get("x-amzn-trace-id", ""))
    item_key = dynamodb_item_key(headers.get("x-amz-target", ""), body) if name == "dynamodb" else ""
    return AwsRequest(
        signature.caller, region, name, operation, tuple(dict.fromkeys(permissions)), trace, item_key=item_key
    )


def trace_root(header: str) -> str:
    """`Root=1-...;Parent=...;Sampled=0` -> `1-...`: the same for every call of one invocation."""
    for part in unquote(header).split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root":
            return value
    return ""


# --- DynamoDB (JSON protocol: `X-Amz-Target: DynamoDB_20120810.<Operation>`) ----------------------

_TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def table_arn(table: str, *, region: str, account: str = ACCOUNT_ID, index: str | None = None) -> str:
    arn = table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _json_request(target: str, body: bytes) -> tuple[str, dict[str, Any]] | None:
    """A JSON-protocol request: the operation its `X-Amz-Target` names and its body; None if it is not one."""
    operation = target.rpartition(".")[2]
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    return (operation, request) if operation and isinstance(request, dict) else None


def dynamodb_item_key(target: str, body: bytes) -> str:
    """The `Key` of a single-item request (`GetItem`, `UpdateItem`, `DeleteItem`), its values in attribute-name
    order joined by `|` (`RATE#u-1|LIMIT#writes`); "" for any other request. Which items a caller touched,
    beyond the table: how the tests tell the rate limit's requests (its own client) from the rest."""
    parsed = _json_request(target, body)
    key = parsed[1].get("Key") if parsed else None
    if not isinstance(key, dict):
        return ""
    values = (next(iter(value.values()), "") if isinstance(value, dict) else "" for _, value in sorted(key.items()))
    return "|".join(str(value) for value in values)


def dynamodb_permissions(
    target: str, body: bytes, *, region: str, account: str = ACCOUNT_ID
) -> tuple[str, list[Permission]] | None:
    parsed = _json_request(target, body)
    if parsed is None:
        return None
    operation, request = parsed

    def arn(table: str, index: str | None = None) -> str:
        return table_arn(table, region=region, account=account, index=index)

    if target.startswith(_STREAMS_TARGET_PREFIX):
        return operation, [Permission(f"dynamodb:{operation}", _stream_resource(operation, request))]
    if operation == "TransactWriteItems":
        permissions = []
        for item in request.get("TransactItems", []):
            for kind, action in _TRANSACT_WRITE_ACTIONS.items():
                if kind in item:
                    permissions.append(Permission(action, arn(item[kind]["TableName"])))
        return operation, permissions
    if operation == "TransactGetItems":
        tables = (item["Get"]["TableName"] for item in request.get("TransactItems", []) if "Get" in item)
        return operation, [Permission("dynamodb:GetItem", arn(table)) for table in tables]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return operation, [Permission(f"dynamodb:{operation}", arn(table)) for table in request.get("RequestItems", {})]
    table = request.get("TableName")
    resource = arn(table, request.get("IndexName")) if table else "*"
    return operation, [Permission(f"dynamodb:{operation}", resource)]


_STREAMS_TARGET_PREFIX = "DynamoDBStreams_"


def _stream_resource(operation: str, request: Mapping[str, Any]) -> str:
    if operation == "GetRecords":
        return str(request.get("ShardIterator", "")).split("|", 1)[0] or "*"
    return str(request.get("StreamArn") or "*")  # ListStreams names no stream: its resource is "*"


# --- SQS (JSON protocol: `X-Amz-Target: AmazonSQS.<Operation>`) ------------------------------------

_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def sqs_queue_arn(name: str, *, region: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def sqs_permissions(
    target: str, body: bytes, *, region: str, account: str = ACCOUNT_ID
) -> tuple[str, list[Permission]] | None:
    parsed = _json_request(target, body) if target.startswith("AmazonSQS.") else None
    if parsed is None:
        return None
    operation, request = parsed
    action = f"sqs:{_SQS_BATCH_ACTIONS.get(operation, operation)}"
    if request.get("QueueUrl"):
        owner, _, name = urlsplit(str(request["QueueUrl"])).path.strip("/").rpartition("/")
        return operation, [Permission(action, sqs_queue_arn(name, region=region, account=owner or account))]
    if request.get("QueueName"):
        owner = str(request.get("QueueOwnerAWSAccountId") or account)
        return operation, [Permission(action, sqs_queue_arn(str(request["QueueName"]), region=region, account=owner))]
    return operation, [Permission(action, "*")]


# --- S3 (REST; path-style through an endpoint URL, or virtual-hosted) -------------------------------

# (method, subresource) -> (operation, action); "" is no subresource.
_OBJECT_OPERATIONS = {
    ("GET", ""): ("GetObject", "s3:GetObject"),
    ("HEAD", ""): ("HeadObject", "s3:GetObject"),
    ("PUT", ""): ("PutObject", "s3:PutObject"),
    ("DELETE", ""): ("DeleteObject", "s3:DeleteObject"),
    ("POST", "uploads"): ("CreateMultipartUpload", "s3:PutObject"),
    ("PUT", "uploadId"): ("UploadPart", "s3:PutObject"),
    ("POST", "uploadId"): ("CompleteMultipartUpload", "s3:PutObject"),
    ("DELETE", "uploadId"): ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
    ("GET", "uploadId"): ("ListParts", "s3:ListMultipartUploadParts"),
    ("GET", "tagging"): ("GetObjectTagging", "s3:GetObjectTagging"),
    ("PUT", "tagging"): ("PutObjectTagging", "s3:PutObjectTagging"),
    ("DELETE", "tagging"): ("DeleteObjectTagging", "s3:DeleteObjectTagging"),
}
_BUCKET_OPERATIONS = {
    ("GET", ""): ("ListObjects", "s3:ListBucket"),
    ("HEAD", ""): ("HeadBucket", "s3:ListBucket"),
    ("PUT", ""): ("CreateBucket", "s3:CreateBucket"),
    ("DELETE", ""): ("DeleteBucket", "s3:DeleteBucket"),
    ("GET", "versions"): ("ListObjectVersions", "s3:ListBucketVersions"),
    ("GET", "uploads"): ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("GET", "location"): ("GetBucketLocation", "s3:GetBucketLocation"),
}
# Query parameters that qualify an operation rather than name a subresource.
_PLAIN_PARAMETERS = frozenset(
    {
        "x-id",
        "versionId",
        "partNumber",
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "encoding-type",
        "start-after",
        "fetch-owner",
        "marker",
        "max-parts",
        "part-number-marker",
        "max-uploads",
        "key-marker",
        "upload-id-marker",
        "version-id-marker",
    }
)
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+?)\.(s3([.-][a-z0-9-]+)*\.amazonaws\.com|localhost)$")


def s3_object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def s3_bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def s3_bucket_and_key(path: str, host: str = "") -> tuple[str, str]:
    """The bucket and (decoded) key a request addresses: from the host if virtual-hosted, else the path."""
    match = _VIRTUAL_HOST.match(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    if match:
        return match["bucket"], unquote(path.lstrip("/"))
    bucket, _, key = path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def _is_subresource(parameter: str) -> bool:
    return parameter not in _PLAIN_PARAMETERS and not parameter.lower().startswith(("response-", "x-amz-"))


def s3_permissions(
    method: str, path: str, query: str, headers: Mapping[str, str]
) -> tuple[str, list[Permission]] | None:
    bucket, key = s3_bucket_and_key(path, headers.get("host", ""))
    parameters = _query(query)
    subresources = [name for name in parameters if _is_subresource(name)]
    subresource = "uploadId" if "uploadId" in subresources else (subresources[0] if subresources else "")
    if not bucket:
        return ("ListBuckets", [Permission("s3:ListAllMyBuckets", "*")]) if method == "GET" and not query else None
    if not key:
        found = _BUCKET_OPERATIONS.get((method, subresource))
        if found is None:
            return None
        operation, action = found
        if operation == "ListObjects" and parameters.get("list-type") == "2":
            operation = "ListObjectsV2"
        return operation, [Permission(action, s3_bucket_arn(bucket))]
    found = _OBJECT_OPERATIONS.get((method, subresource))
    if found is None:
        return None
    operation, action = found
    if "versionId" in parameters and action in ("s3:GetObject", "s3:DeleteObject"):
        action += "Version"  # reading or deleting a given version is its own permission
    permissions = [Permission(action, s3_object_arn(bucket, key))]
    source = headers.get("x-amz-copy-source")
    if source and method == "PUT":
        operation = "CopyObject" if operation == "PutObject" else "UploadPartCopy"
        source_bucket, source_key = s3_bucket_and_key(urlsplit(source).path)
        permissions.append(Permission("s3:GetObject", s3_object_arn(source_bucket, source_key)))
    return operation, permissions


# --- Bedrock Runtime (`POST /model/{modelId}/{operation}`, signed as `bedrock`) --------------------

_MODEL_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<operation>[a-z-]+)$")
_MODEL_OPERATIONS = {
    "converse": ("Converse", "bedrock:InvokeModel"),
    "converse-stream": ("ConverseStream", "bedrock:InvokeModelWithResponseStream"),
    "invoke": ("InvokeModel", "bedrock:InvokeModel"),
    "invoke-with-response-stream": ("InvokeModelWithResponseStream", "bedrock:InvokeModelWithResponseStream"),
}


def foundation_model_arn(model: str, region: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


def model_arns(model_id: str, *, region: str, account: str = ACCOUNT_ID) -> list[str]:
    """Every ARN an invocation of `model_id` is authorized on (all must allow it)."""
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        kind, _, name = parts[-1].partition("/")
        prefix, model = split_profile(name)
        if len(parts) < 6 or kind != "inference-profile" or prefix is None:
            return [model_id]  # a foundation model, provisioned model or application profile ARN
        profile, region = model_id, parts[3]
    else:
        prefix, model = split_profile(model_id)
        if prefix is None:
            return [foundation_model_arn(model_id, region)]
        profile = f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}"
    arns = [profile, foundation_model_arn(model, region)]
    if prefix == "global":  # a global profile also needs the model without a Region
        arns.append(foundation_model_arn(model, ""))
    return arns


def bedrock_permissions(
    method: str, path: str, *, region: str, account: str = ACCOUNT_ID
) -> tuple[str, list[Permission]] | None:
    match = _MODEL_PATH.match(path)
    found = _MODEL_OPERATIONS.get(match["operation"]) if match and method == "POST" else None
    if match is None or found is None:
        return None
    operation, action = found
    model_id = unquote(match["model"])
    return operation, [Permission(action, arn) for arn in model_arns(model_id, region=region, account=account)]


# --- Lambda (`POST /2015-03-31/functions/{name}/invocations`) --------------------------------------

_INVOKE_PATHS = (
    ("Invoke", re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")),
    ("InvokeWithResponseStream", re.compile(r"^/2021-11-15/functions/(?P<name>[^/]+)/response-streaming-invocations$")),
)


def function_arn(name_or_arn: str, *, region: str, account: str = ACCOUNT_ID, qualifier: str = "") -> str:
    """`name`, `name:qualifier`, `account:function:name[:qualifier]` and full ARNs, as the full ARN."""
    parts = unquote(name_or_arn).split(":")
    if parts[0] == "arn" and len(parts) >= 7:
        region, account, parts = parts[3], parts[4], parts[6:]
    elif len(parts) >= 3 and parts[1] == "function":
        account, parts = parts[0], parts[2:]
    name = parts[0]
    qualifier = parts[1] if len(parts) > 1 else qualifier
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def lambda_permissions(
    method: str, path: str, query: str, *, region: str, account: str = ACCOUNT_ID
) -> tuple[str, list[Permission]] | None:
    for operation, pattern in _INVOKE_PATHS:
        match = pattern.match(path)
        if match and method == "POST":
            qualifier = _query(query).get("Qualifier", "")
            arn = function_arn(match["name"], region=region, account=account, qualifier=qualifier)
            return operation, [Permission("lambda:InvokeFunction", arn)]
    return None


def _query(query: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}
