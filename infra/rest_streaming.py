"""A REST API that streams: API Gateway (`responseTransferMode: STREAM`) in front of the streaming functions.

The Function URLs stay the primary streaming door; this is the second one, for clients that want API
Gateway in the path (a Cognito authorizer before the function, stage throttling, access logs, one host
for both flows). Each streaming function of the catalog gets one method on the same path as its
Function URL (CONTRACT.md section 1), integrated with `InvokeWithResponseStream` (CDK's
`ResponseTransferMode.STREAM` selects the `/response-streaming-invocations` URI); on Lambda Managed
Instances the function given is its `live` alias, since an unqualified invoke would reach
`$LATEST.PUBLISHED`, not the published version the alias names. The function receives
a REST v1 proxy event and answers it with the same prelude and body as on its Function URL; the
adapter acknowledges API Gateway's follow-up completion invocation.

Choices the streaming mode dictates (API Gateway developer guide, "Stream the integration response"):
- a REGIONAL endpoint: an idle stream is cut after 5 minutes there, after 30 seconds when edge-optimized;
- the integration timeout is the function's own timeout (streams may last up to 15 minutes), not 29 s;
- no caching, no compression, no response mapping (none of them works on a streamed response).

`REST_STREAM_ROUTES` maps a catalog name to its route; `catalog_rules.rest_stream_routes` checks it
against the catalog at synth time. The routes come from `shared/http/routes.py`, the very templates the
handlers' routers match, so the REST path and the handler can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, Duration, Fn
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.catalog import STREAM_COACH_CONVERSATION, STREAM_COACH_CREATOR_SESSION, FunctionDefinition
from infra.catalog_rules import Route, construct_id, rest_stream_routes
from infra.config import InfraConfig
from infra.nag import acknowledge
from shared.http.body import MAX_IMAGE_KEY_CHARS, MAX_IMAGES
from shared.http.routes import CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE

REST_STREAM_ROUTES: dict[str, str] = {
    STREAM_COACH_CONVERSATION.name: f"{CONVERSATION_STREAM_ROUTE.method} {CONVERSATION_STREAM_ROUTE.template}",
    STREAM_COACH_CREATOR_SESSION.name: f"{CREATOR_SESSION_STREAM_ROUTE.method} {CREATOR_SESSION_STREAM_ROUTE.template}",
}
REST_STREAM_OUTPUT_KEY = "restStreamApiUrl"
REST_STAGE_NAME = "v1"
REST_ALLOWED_HEADERS = ("authorization", "content-type")
MAX_STREAM_SECONDS = 900  # API Gateway's limit on one streamed response
# REST API $context variables; like the HTTP API's log, no token, body or query string is logged.
REST_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatencyMs": "$context.integration.latency",
    "integrationError": "$context.integration.error",
    "errorType": "$context.error.responseType",
    "authorizerError": "$context.authorizer.error",
}
# Errors API Gateway answers itself, in the contract's shape (CONTRACT.md section 2) instead of
# `{"message": ...}`: (response type, status or None to keep API Gateway's, code, message).
GATEWAY_ERRORS: tuple[tuple[apigw.ResponseType, str | None, str, str], ...] = (
    (apigw.ResponseType.UNAUTHORIZED, "401", "UNAUTHORIZED", "missing or invalid token"),
    (apigw.ResponseType.ACCESS_DENIED, "403", "FORBIDDEN", "access denied"),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "NOT_FOUND", "no such route"),
    (apigw.ResponseType.BAD_REQUEST_BODY, "400", "VALIDATION_ERROR", "request body does not match the contract"),
    (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "400", "VALIDATION_ERROR", "missing request parameter"),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "PAYLOAD_TOO_LARGE", "request body too large"),
    (apigw.ResponseType.THROTTLED, "429", "RATE_LIMITED", "too many requests"),
    (apigw.ResponseType.DEFAULT_5_XX, None, "INTERNAL_ERROR", "internal error"),
)
THROTTLED_RETRY_AFTER_SECONDS = 1


def stream_body_schema() -> apigw.JsonSchema:
    """A looser twin of `shared.http.body.StreamRequestBody`: it refuses only what the handler refuses too.

    The handler stays the authority (trimming, timestamps, the image prefix, the size limit); this
    spares a Lambda invocation for a body that is plainly not the contract's.
    """
    string = apigw.JsonSchemaType.STRING
    null = apigw.JsonSchemaType.NULL
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="StreamRequestBody",
        type=apigw.JsonSchemaType.OBJECT,
        required=["userResponse"],
        additional_properties=False,
        properties={
            "userResponse": apigw.JsonSchema(type=string, min_length=1),
            "messageTimestamp": apigw.JsonSchema(type=[string, null]),
            "clientMessageId": apigw.JsonSchema(type=[string, null], min_length=1, max_length=64),
            "imageS3Keys": apigw.JsonSchema(
                type=[apigw.JsonSchemaType.ARRAY, null],
                max_items=MAX_IMAGES,
                items=apigw.JsonSchema(type=string, min_length=1, max_length=MAX_IMAGE_KEY_CHARS),
            ),
        },
    )


def error_template(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))


class RestStreamingApi(Construct):
    """The REST API, its stage, the Cognito authorizer and one streaming method per streaming function."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        config: InfraConfig,
        definitions: list[FunctionDefinition],
        functions: Mapping[str, lambda_.IFunction],
        user_pool: cognito.IUserPool,
        routes: Mapping[str, str] = REST_STREAM_ROUTES,
    ) -> None:
        super().__init__(scope, construct_id_)
        self.routes: list[Route] = rest_stream_routes(definitions, routes)
        timeouts = {d.name: d.timeout_seconds for d in definitions}
        access_logs = logs.LogGroup(self, "AccessLogs")
        access_logs.node.default_child.retention_in_days = config.log_retention_days  # type: ignore[union-attr]
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.name_prefix}-rest-stream",
            description="coach-stream REST API: streamed turns (responseTransferMode STREAM, Cognito authorizer)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=False,  # the account-wide API Gateway logging role is not this app's to own
            deploy_options=apigw.StageOptions(
                stage_name=REST_STAGE_NAME,
                throttling_rate_limit=config.api_throttle_rate,
                throttling_burst_limit=config.api_throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(
                    json.dumps(REST_ACCESS_LOG_FIELDS, separators=(",", ":"))
                ),
            ),
        )
        # The URL goes out as `restStreamApiUrl` (no trailing slash), not as CDK's generated output.
        self.api.node.try_remove_child("Endpoint")
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "CognitoAuthorizer",
            cognito_user_pools=[user_pool],
            identity_source=apigw.IdentitySource.header("Authorization"),
        )
        self.validator = self.api.add_request_validator(
            "BodyAndHeaders", validate_request_body=True, validate_request_parameters=True
        )
        self.body_model = self.api.add_model(
            "StreamRequestBody", content_type="application/json", schema=stream_body_schema()
        )
        self.methods: dict[str, apigw.Method] = {}
        for route in self.routes:
            resource = self.api.root.resource_for_path(route.path)
            integration = apigw.LambdaIntegration(
                functions[route.function],
                proxy=True,
                response_transfer_mode=apigw.ResponseTransferMode.STREAM,
                timeout=Duration.seconds(min(timeouts[route.function], MAX_STREAM_SECONDS)),
                allow_test_invoke=False,  # the console's test call buffers anyway; one permission, not two
            )
            self.methods[route.function] = resource.add_method(
                route.method,
                integration,
                authorizer=self.authorizer,
                authorization_type=apigw.AuthorizationType.COGNITO,
                request_validator=self.validator,
                request_models={"application/json": self.body_model},
                request_parameters={"method.request.header.Authorization": True},
                operation_name=construct_id(route.function),
            )
            resource.add_cors_preflight(
                allow_origins=list(config.allowed_origins),
                allow_methods=[route.method],
                allow_headers=list(REST_ALLOWED_HEADERS),
                max_age=Duration.hours(1),
            )
        for response_type, status, code, message in GATEWAY_ERRORS:
            throttled = response_type.response_type == apigw.ResponseType.THROTTLED.response_type
            self.api.add_gateway_response(
                construct_id(response_type.response_type),
                type=response_type,
                status_code=status,
                response_headers={"Retry-After": f"'{THROTTLED_RETRY_AFTER_SECONDS}'"} if throttled else None,
                templates={"application/json": error_template(code, message)},
            )
        self._acknowledge()

    @property
    def url(self) -> str:
        """`https://<id>.execute-api.<region>.<suffix>/<stage>`: append the contract's paths to it."""
        return Fn.join(
            "",
            ["https://", self.api.rest_api_id, ".execute-api.", Aws.REGION, ".", Aws.URL_SUFFIX, "/", REST_STAGE_NAME],
        )

    def _acknowledge(self) -> None:
        stage = self.api.deployment_stage
        acknowledge(
            stage,
            "AwsSolutions-APIG6",
            reason="Execution logging needs the account-wide API Gateway CloudWatch role (AWS::ApiGateway::Account, "
            "one per account and Region, shared by every API there), which this app does not own. Access logs "
            "(JSON, with the authorizer and integration errors) are on, and each function logs every turn.",
        )
        acknowledge(
            stage,
            "AwsSolutions-APIG3",
            reason="No WAF web ACL by default (a per-request cost): every method needs a Cognito token, the stage "
            "is throttled, and each function enforces a per-user rate limit; associate a web ACL with this stage "
            "when the deployment calls for one.",
        )
