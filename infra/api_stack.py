"""The API stack: every function of `functions/catalog.py`, their Function URLs, and the HTTP API.

Nothing here names a function: a catalog entry decides its construct (streaming or not), its
environment, its permissions (table, models, uploads, async targets), its routes and its event source
(the table's stream, with a dead-letter queue). A function added to the catalog deploys with the next
`make deploy`.

With `managedInstances=true` the streaming functions run on the capacity provider of the Compute stack
(infra/managed_instances.py), are named `<name>-mi`, and are invoked through their `live` alias
(`PythonCatalogFunction.invoke_target`): their Function URLs, the REST streaming API, any HTTP API route
or event source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ArnFormat, Aws, CfnOutput, Duration, Fn, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.catalog import AsyncInvokeConfig, FunctionDefinition
from infra import bedrock
from infra.auth_stack import AuthStack
from infra.bundling import REPO_ROOT, BundleSpec, missing_sources
from infra.catalog_rules import (
    CatalogError,
    async_invoke_config,
    check,
    check_environment,
    construct_id,
    declared_routes,
    routes,
    target_env_var,
    url_env_var,
)
from infra.config import InfraConfig
from infra.data_stack import UPLOADS_PREFIX, DataStack
from infra.feature_flags import StreamingFlags
from infra.functions import (
    ManagedInstancesPlacement,
    PythonCatalogFunction,
    StreamingPythonFunction,
    function_code,
)
from infra.managed_instances import FUNCTION_NAME_SUFFIX, MAX_FUNCTION_NAME, ManagedInstancesStack
from infra.monitoring import Monitoring
from infra.nag import acknowledge
from infra.rest_streaming import REST_STREAM_OUTPUT_KEY, RestStreamingApi
from infra.time_budget import TimeBudgetError, time_budget
from shared.settings import SDK_ENDPOINT_VARIABLES, FlagSettings
from shared.store.schema import TABLE_NAME_ENV

# Item actions a catalog entry may declare (transactions are authorized through these same actions, item
# by item). No Scan, no table management.
TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
INDEX_ACTIONS = ("dynamodb:Query",)
MODEL_CALL_ACTIONS = {"converse": "bedrock:InvokeModel", "stream": "bedrock:InvokeModelWithResponseStream"}
SERVICE_NAME = "coach-stream"
METRICS_NAMESPACE = "CoachStream"
API_ALLOWED_HEADERS = ("authorization", "content-type")
# HTTP API ($context variables that HTTP APIs support); no tokens, bodies or query strings are logged.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        config: InfraConfig,
        definitions: Iterable[FunctionDefinition],
        data: DataStack,
        auth: AuthStack,
        root: Path = REPO_ROOT,
        compute: ManagedInstancesStack | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id_, **kwargs)
        self.config = config
        self.definitions = check(definitions)
        self.data = data
        self.auth = auth
        self.compute = compute
        if config.managed_instances != (compute is not None):
            raise ValueError("managedInstances needs the Compute stack's capacity provider, and only then")
        self._check_managed_instances_callers()
        self.add_stack_dependency(data)  # the uploads bucket ARN is an explicit import (see DataStack)
        self.http_api = self._http_api()
        self.flags = StreamingFlags(self, "StreamingFlags", config=config)  # before the functions that read them
        self.functions: dict[str, PythonCatalogFunction] = {}
        for definition in self.definitions:
            self.functions[definition.name] = self._function(definition, root)
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for definition in self.definitions:
            self._grant(definition)
            self._stream_source(definition)
            self._async_invoke(definition)
        self._stream_urls_for_buffered_functions()
        self._routes()
        self.rest_stream = self._rest_streaming_api()
        if config.sam_local:
            Validations.of(self).add_warning(
                "SamLocalSynth",
                "samLocal=true declares empty AWS_ENDPOINT_URL_* variables for `sam local invoke`; "
                "do not deploy this synth",
            )
        self._outputs()
        self.monitoring = Monitoring(self, "Monitoring", api=self)  # last: it takes up every alarm above

    # --- functions -------------------------------------------------------------------------------

    def function_name(self, catalog_name: str) -> str:
        """Deployed names are fixed by the catalog, so callers can name async targets without a reference."""
        return f"{self.config.name_prefix}-{catalog_name}"

    def environment(self, definition: FunctionDefinition) -> dict[str, str]:
        """Exactly the variables the function's settings model reads (`FunctionDefinition.settings`),
        with the values this stack gives them; a model variable the stack cannot give fails the synth."""
        config = self.config
        offered = {
            "JWT_ISSUER": self.auth.issuer,
            "JWT_AUDIENCE": self.auth.client.user_pool_client_id,
            "STREAMING_ENABLED": "true" if config.streaming_enabled else "false",
            "STREAMING_PERCENTAGE": str(config.streaming_percentage),
            **self.flags.variables(),
            "RATE_LIMIT_PER_MINUTE": str(config.rate_limit_per_minute),
            "RATE_LIMIT_READS_PER_MINUTE": str(config.rate_limit_reads_per_minute),
            **self._time_settings(definition),
            "ALLOWED_ORIGINS": ",".join(config.allowed_origins),
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            TABLE_NAME_ENV: self.data.table.table_name,
            "MODEL_ID_REPLY": config.model_id_reply,
            "MODEL_ID_SIDE": config.model_id_side,
            "UPLOADS_BUCKET": self.data.uploads.bucket_name,
            "API_URL": self.http_api.api_endpoint,
            **{target_env_var(target): self.function_name(target) for target in definition.invokes},
        }
        wanted = definition.settings.variables()
        env = {name: value for name, value in offered.items() if name in wanted}
        if config.sam_local:
            # `sam local invoke --env-vars` only overrides variables the template declares.
            env.update(dict.fromkeys(SDK_ENDPOINT_VARIABLES, ""))
            if definition.streaming:
                # SAM's emulator does not stream: the wrapper hands over to the stock bootstrap (buffered).
                env["STREAMING_ADAPTER"] = "off"
        env.update(definition.extra_environment)
        check_environment(definition, env)
        return env

    def _time_settings(self, definition: FunctionDefinition) -> dict[str, str]:
        """A turn's budget and deadline margin, from its worst case; any function that cannot fit its
        timeout fails the synth (`infra/time_budget.py`)."""
        try:
            budget = time_budget(definition, definition.extra_environment, self.config.stream_time_budget_seconds)
        except TimeBudgetError as exc:
            raise CatalogError(str(exc)) from None
        if budget.stream_budget_seconds is None or budget.deadline_margin_seconds is None:
            return {}
        return {
            "STREAM_TIME_BUDGET_SECONDS": f"{budget.stream_budget_seconds:g}",
            "STREAM_DEADLINE_MARGIN_SECONDS": f"{budget.deadline_margin_seconds:g}",
        }

    def _stream_urls_for_buffered_functions(self) -> None:
        """The Function URLs, for the buffered functions (`GET /config` tells the client where to stream).

        Streaming functions do not get them: a function whose environment names its own URL (or a URL
        that names it back) would be a dependency cycle.
        """
        urls = {
            url_env_var(d.url_output_key): _without_trailing_slash(fn.url.url)
            for d in self.definitions
            if d.url_output_key and isinstance(fn := self.functions[d.name], StreamingPythonFunction)
        }
        for definition in self.definitions:
            if not definition.streaming:
                wanted = definition.settings.variables()
                for key, value in urls.items():
                    if key in wanted:
                        self.functions[definition.name].function.add_environment(key, value)

    def on_managed_instances(self, definition: FunctionDefinition) -> bool:
        """The streaming functions move to Managed Instances when they are on; the others stay classic."""
        return self.compute is not None and definition.streaming

    def deployed_name(self, definition: FunctionDefinition) -> str:
        """`function_name`, set apart on Managed Instances (`infra.managed_instances.FUNCTION_NAME_SUFFIX`)."""
        name = self.function_name(definition.name)
        if not self.on_managed_instances(definition):
            return name
        name += FUNCTION_NAME_SUFFIX
        if len(name) > MAX_FUNCTION_NAME:
            raise CatalogError(f"{name}: a Lambda function name has at most {MAX_FUNCTION_NAME} characters")
        return name

    def _placement(self, definition: FunctionDefinition) -> ManagedInstancesPlacement | None:
        if self.compute is None or not self.on_managed_instances(definition):
            return None
        return ManagedInstancesPlacement(
            capacity_provider=self.compute.capacity_provider,
            max_concurrency=self.config.managed_instances_concurrency,
            memory_gib_per_vcpu=self.config.managed_instances_memory_per_vcpu,
            memory_mb=self.config.managed_instances_memory_mb,
        )

    def _check_managed_instances_callers(self) -> None:
        """Functions invoke their async targets by bare name (`*_FUNCTION_NAME`) with a grant on the unqualified
        ARN, which on Managed Instances would reach `$LATEST.PUBLISHED`, not the alias: refused, not deployed."""
        if self.compute is None:
            return
        moved = {d.name for d in self.definitions if self.on_managed_instances(d)}
        for definition in self.definitions:
            targets = sorted(set(definition.invokes) & moved)
            if targets:
                raise CatalogError(
                    f"{definition.name} invokes {targets} by name, which on Managed Instances would bypass their "
                    "live alias; synth with managedInstances=false or invoke them through the alias"
                )
        self.compute.check_capacity(len(moved))

    def _function(self, definition: FunctionDefinition, root: Path) -> PythonCatalogFunction:
        spec = BundleSpec(
            folder=definition.folder,
            python_version=self.config.python_version,
            architecture=self.config.architecture,
            root=root,
        )
        common: dict[str, Any] = {
            "definition": definition,
            "function_name": self.deployed_name(definition),
            "code": function_code(spec),
            "environment": self.environment(definition),
            "python_version": self.config.python_version,
            "architecture": self.config.architecture,
            "log_retention_days": self.config.log_retention_days,
            "managed_instances": self._placement(definition),
        }
        cid = construct_id(definition.name)
        if definition.streaming:
            fn: PythonCatalogFunction = StreamingPythonFunction(
                self, cid, allowed_origins=self.config.allowed_origins, **common
            )
        else:
            fn = PythonCatalogFunction(self, cid, **common)
        # A readable, stable logical id: `sam local invoke -t cdk.out/<Stack>.template.json <Name>Function`.
        fn.function.node.default_child.override_logical_id(definition.logical_id)  # type: ignore[union-attr]
        missing = missing_sources(spec)
        if missing:
            # Synth still works while a function's folder has not landed; deploying it would not.
            Validations.of(fn).add_warning(
                "MissingFunctionCode",
                f"{definition.name}: {', '.join(missing)} not found; the deployed function would fail to import",
            )
        acknowledge(
            fn.role,
            "AwsSolutions-IAM5[Resource::*]",
            reason="Active tracing: X-Ray's PutTraceSegments and PutTelemetryRecords take no resource-level "
            "permissions, so Lambda's tracing policy names '*' for these two actions only"
            + (
                "; likewise dynamodb:ListStreams, which the event source mapping polling the table's stream "
                "needs (the stream's own actions name the stream)."
                if definition.stream_source is not None
                else "."
            ),
        )
        acknowledge(
            fn.function,
            "AwsSolutions-L1",
            reason=f"Python {self.config.python_version} is the runtime the wheels are bundled and tested "
            "for; moving to a newer one is a deliberate change (InfraConfig.python_version).",
        )
        return fn

    def _grant(self, definition: FunctionDefinition) -> None:
        fn = self.functions[definition.name]
        if issubclass(definition.settings, FlagSettings):
            self.flags.grant_read(fn.role)
        if definition.uses_table:
            table = self.data.table
            actions = table_actions(definition)
            fn.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[table.table_arn]))
            index_arns = [f"{table.table_arn}/index/{name}" for name in self.data.table_definition.indexes]
            index_actions = [a for a in actions if a in INDEX_ACTIONS]
            if index_arns and index_actions:
                fn.add_to_role_policy(iam.PolicyStatement(actions=index_actions, resources=index_arns))
        for action, model_ids in self.model_grants(definition).items():
            self._grant_models(fn, action, model_ids)
        if definition.reads_uploads:
            uploads_arn = Fn.import_value(self.data.uploads_arn_export)
            fn.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{uploads_arn}/{UPLOADS_PREFIX}*"])
            )
            acknowledge(
                fn.role,
                f"AwsSolutions-IAM5[Resource::{self.data.uploads_arn_export}/{UPLOADS_PREFIX}*]",
                reason="Read access is limited to the user-uploads/ prefix; the code further requires every "
                "key to lie under user-uploads/{userId}/ of the authenticated user (CONTRACT.md section 1).",
            )
        for target in definition.invokes:
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="lambda",
                            resource="function",
                            resource_name=self.function_name(target),
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )

    def dead_letter_queue_name(self, catalog_name: str) -> str:
        """A fixed name an alarm or an operator can find: `<function name>-dlq`."""
        return f"{self.function_name(catalog_name)}-dlq"

    def _stream_source(self, definition: FunctionDefinition) -> None:
        """The table's stream as the function's event source (`FunctionDefinition.stream_source`): filtered to
        its items, in small batches reported item by item, split and retried a bounded number of times, then
        described in a dead-letter queue (encrypted, TLS only, alarmed). The mapping polls with the function's
        role, so CDK grants that role the stream's read actions and the queue's send."""
        source = definition.stream_source
        if source is None:
            return
        fn = self.functions[definition.name]
        queue = self._dead_letter_queue(
            f"{construct_id(definition.name)}DeadLetters",
            self.dead_letter_queue_name(definition.name),
            source.dead_letter_retention_days,
            holds=f"the dead-letter destination of {definition.name}'s event source mapping",
            alarm=f"{definition.name}: stream records that kept failing are described in "
            f"{self.dead_letter_queue_name(definition.name)}; their items stay in the table until their TTL.",
        )
        fn.invoke_target.add_event_source(
            event_sources.DynamoEventSource(
                self.data.table,
                starting_position=lambda_.StartingPosition(source.starting_position),
                batch_size=source.batch_size,
                bisect_batch_on_error=source.bisect_on_error,
                retry_attempts=source.retry_attempts,
                max_record_age=Duration.seconds(source.max_record_age_seconds),
                report_batch_item_failures=True,
                on_failure=event_sources.SqsDlq(queue),
                filters=[lambda_.FilterCriteria.filter(source.filter_pattern())],
            )
        )
        self.dead_letter_queues[definition.name] = queue

    def _async_invoke(self, definition: FunctionDefinition) -> None:
        """Lambda's handling of the function's asynchronous invocations (`FunctionDefinition.async_invoke`): its
        retries, its maximum event age, and where the record of an invocation that failed them all goes: the
        catalog function named for it (a Lambda destination: Lambda invokes it with the record), or the function's
        own dead-letter queue (encrypted, TLS only, alarmed). Lambda delivers the record with the function's role,
        which gets exactly that invoke or that send (`_FunctionDestination`, `_QueueDestination`)."""
        config = async_invoke_config(definition, self.definitions)
        if config is None:
            return
        destination: lambda_.IDestination
        if config.on_failure_function is not None:
            target = config.on_failure_function
            destination = _FunctionDestination(self.functions[target].invoke_target, self._function_arn(target))
        else:
            destination = _QueueDestination(self._async_dead_letter_queue(definition, config))
        self.functions[definition.name].invoke_target.configure_async_invoke(
            retry_attempts=config.retry_attempts,
            max_event_age=Duration.seconds(config.max_event_age_seconds),
            on_failure=destination,
        )

    def async_dead_letter_queue_name(self, catalog_name: str) -> str:
        """Where a function's failed asynchronous invocations are recorded: `<function name>-async-dlq` (apart from
        its stream mapping's `-dlq`: one function may have both)."""
        return f"{self.function_name(catalog_name)}-async-dlq"

    def _function_arn(self, catalog_name: str) -> str:
        """A catalog function's unqualified ARN, from its fixed deployed name."""
        return Stack.of(self).format_arn(
            service="lambda",
            resource="function",
            resource_name=self.function_name(catalog_name),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _async_dead_letter_queue(self, definition: FunctionDefinition, config: AsyncInvokeConfig) -> sqs.Queue:
        name = self.async_dead_letter_queue_name(definition.name)
        queue = self._dead_letter_queue(
            f"{construct_id(definition.name)}AsyncDeadLetters",
            name,
            config.dead_letter_retention_days,
            holds=f"the on-failure destination of {definition.name}'s asynchronous invocations",
            alarm=f"{definition.name}: asynchronous invocations that failed every attempt are recorded in {name}, "
            "each with its event.",
        )
        self.dead_letter_queues[f"{definition.name} (async)"] = queue
        return queue

    def _dead_letter_queue(self, cid: str, name: str, retention_days: int, *, holds: str, alarm: str) -> sqs.Queue:
        """A queue an operator reads (encrypted, TLS only, fixed name) and its alarm, `<name>-not-empty`, on the
        first message: what lands in it is a failure nobody else will see."""
        queue = sqs.Queue(
            self,
            cid,
            queue_name=name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(retention_days),
        )
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            reason=f"This queue is {holds}: what lands here is kept for an operator (and alarmed), not consumed, "
            "so it needs no dead-letter queue of its own.",
        )
        cloudwatch.Alarm(
            self,
            f"{cid}Alarm",
            alarm_name=f"{name}-not-empty",
            alarm_description=alarm,
            metric=queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return queue

    def model_grants(self, definition: FunctionDefinition) -> dict[str, list[str]]:
        """Bedrock action -> the configured model ids the function calls that way (`model_calls`)."""
        ids = {"reply": self.config.model_id_reply, "side": self.config.model_id_side}
        grants: dict[str, list[str]] = {}
        for model, call in definition.model_calls:
            if model not in ids or call not in MODEL_CALL_ACTIONS:
                raise CatalogError(
                    f"{definition.name}: model call {(model, call)} is not (reply|side, converse|stream)"
                )
            grants.setdefault(MODEL_CALL_ACTIONS[call], [])
            if ids[model] not in grants[MODEL_CALL_ACTIONS[call]]:
                grants[MODEL_CALL_ACTIONS[call]].append(ids[model])
        return grants

    def _grant_models(self, fn: PythonCatalogFunction, action: str, model_ids: list[str]) -> None:
        resources = bedrock.model_resources(
            model_ids, partition=Aws.PARTITION, region=Aws.REGION, account=Aws.ACCOUNT_ID
        )
        arns = resources.profiles + resources.foundation_models
        fn.add_to_role_policy(iam.PolicyStatement(actions=[action], resources=arns))
        for arn in resources.foundation_models:
            if ":*:" not in arn:
                continue
            model = arn.rsplit("/", 1)[1]
            acknowledge(
                fn.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{model}]",
                reason=f"{model} is reached through a cross-Region inference profile, which may route to any "
                "of its destination Regions; Bedrock requires the foundation model ARN in each of them. "
                "The model is fixed, only the Region is open.",
            )

    # --- the HTTP API ----------------------------------------------------------------------------

    def _http_api(self) -> apigwv2.HttpApi:
        """The API, its stage and the authorizer; routes come after the functions (`_routes`)."""
        found = declared_routes(self.definitions)
        methods = sorted({route.method for route in found} or {"GET"})
        api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{self.config.name_prefix}-api",
            description="coach-stream API: fallbacks and reads (JWT authorizer on the user pool)",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(self.config.allowed_origins),
                allow_methods=[apigwv2.CorsHttpMethod(m) for m in methods],
                allow_headers=list(API_ALLOWED_HEADERS),
                expose_headers=["retry-after"],
                max_age=Duration.hours(1),
            ),
        )
        access_logs = logs.LogGroup(self, "HttpApiAccessLogs")
        access_logs.node.default_child.retention_in_days = self.config.log_retention_days  # type: ignore[union-attr]
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=self.config.api_throttle_rate, burst_limit=self.config.api_throttle_burst
            ),
            access_log_settings=_AccessLogs(apigwv2.LogGroupLogDestination(access_logs)),
        )
        self.authorizer = authorizers.HttpUserPoolAuthorizer(
            "CognitoAuthorizer",
            self.auth.user_pool,
            user_pool_clients=[self.auth.client],
            identity_source=["$request.header.Authorization"],
        )
        return api

    def _routes(self) -> None:
        lambda_integrations: dict[str, integrations.HttpLambdaIntegration] = {}
        self.routes: dict[str, apigwv2.HttpRoute] = {}
        for route in routes(self.definitions):
            integration = lambda_integrations.get(route.function)
            if integration is None:
                integration = integrations.HttpLambdaIntegration(
                    f"{construct_id(route.function)}Integration", self.functions[route.function].invoke_target
                )
                lambda_integrations[route.function] = integration
            created = self.http_api.add_routes(
                path=route.path,
                methods=[apigwv2.HttpMethod(route.method)],
                integration=integration,
                authorizer=self.authorizer if route.authorized else apigwv2.HttpNoneAuthorizer(),
            )
            for http_route in created:
                self.routes[route.key] = http_route
                if not route.authorized:
                    acknowledge(
                        http_route,
                        "AwsSolutions-APIG4",
                        reason=f"{route.key} is declared public in functions/catalog.py (public_routes): "
                        "it serves no user data without a token (e.g. GET /config).",
                    )

    # --- the REST streaming API (optional: restStreaming) ----------------------------------------

    def _rest_streaming_api(self) -> RestStreamingApi | None:
        """API Gateway REST in front of the streaming functions (infra/rest_streaming.py), unless switched off
        or the catalog has no streaming function (a REST API without methods cannot be deployed)."""
        if not self.config.rest_streaming or not any(d.streaming and d.url_output_key for d in self.definitions):
            return None
        return RestStreamingApi(
            self,
            "RestStreamApi",
            config=self.config,
            definitions=self.definitions,
            functions={name: fn.invoke_target for name, fn in self.functions.items()},
            user_pool=self.auth.user_pool,
        )

    # --- outputs: the keys of .local/outputs.json -------------------------------------------------

    def _outputs(self) -> None:
        CfnOutput(self, "apiUrl", value=self.http_api.api_endpoint, description="HTTP API base URL")
        for definition in self.definitions:
            fn = self.functions[definition.name]
            if definition.url_output_key and isinstance(fn, StreamingPythonFunction):
                CfnOutput(
                    self,
                    definition.url_output_key,
                    value=_without_trailing_slash(fn.url.url),
                    description=f"{definition.name} Function URL (RESPONSE_STREAM)",
                )
        if self.rest_stream is not None:
            CfnOutput(
                self,
                REST_STREAM_OUTPUT_KEY,
                value=self.rest_stream.url,
                description="REST API (responseTransferMode STREAM) base URL: append the stream paths of CONTRACT.md",
            )
        CfnOutput(self, "issuer", value=self.auth.issuer, description="JWT issuer (the user pool)")
        CfnOutput(self, "userPoolId", value=self.auth.user_pool.user_pool_id)
        CfnOutput(self, "userPoolClientId", value=self.auth.client.user_pool_client_id)


def table_actions(definition: FunctionDefinition) -> list[str]:
    """The catalog entry's DynamoDB actions, checked against the ones any function may have."""
    actions = [f"dynamodb:{name}" for name in definition.table_actions]
    unknown = sorted(set(actions) - set(TABLE_ACTIONS))
    if unknown or not actions:
        raise CatalogError(f"{definition.name}: table_actions must be some of {TABLE_ACTIONS}, not {unknown or '()'}")
    return actions


def _without_trailing_slash(url: str) -> str:
    """A Function URL is `https://<id>.lambda-url.<region>.on.aws/`; the outputs carry no trailing slash,
    like the local stack's, so `${url}/users/...` never makes a `//` path."""
    return Fn.join("", ["https://", Fn.select(2, Fn.split("/", url))])


@jsii.implements(lambda_.IDestination)
class _FunctionDestination:
    """A function as an on-failure destination, its invoke granted on its unqualified ARN (`grant_arn`, by
    name, as async targets are) only. (CDK's `LambdaDestination` also grants `<arn>:*`, every version and
    alias, which the record never goes to.)"""

    def __init__(self, target: lambda_.IFunction, grant_arn: str) -> None:
        self._target = target
        self._grant_arn = grant_arn

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType
    ) -> lambda_.DestinationConfig:
        fn.add_to_role_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self._grant_arn]))
        return lambda_.DestinationConfig(destination=self._target.function_arn)


@jsii.implements(lambda_.IDestination)
class _QueueDestination:
    """A queue as an on-failure destination, with only the send Lambda makes. (CDK's `SqsDestination` also
    grants `GetQueueAttributes` and `GetQueueUrl`, which Lambda does not use: it sends to the queue's ARN.)"""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType
    ) -> lambda_.DestinationConfig:
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self._queue.queue_arn]))
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """JSON access logs to a log group (IAccessLogSettings is an interface, not a struct, in Python)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))
