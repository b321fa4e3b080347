"""The data stack: the single DynamoDB table (from `shared/store/schema.py`) and the uploads bucket.

The table's stream exists because the catalog has a function it invokes (`TableStreamSource`): its view type
is the one those sources read (`infra.catalog_rules.table_stream_view_type`), and the local stack creates its
table with the stream this template gives.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import InfraConfig
from infra.nag import acknowledge
from shared.store.schema import COACH_TABLE, TableDefinition

UPLOADS_PREFIX = "user-uploads/"


def build_table(scope: Construct, definition: TableDefinition, stream_view_type: str | None = None) -> dynamodb.Table:
    """The table exactly as the local DynamoDB creates it (`create_table_request`, and the stream), plus what
    AWS adds: point-in-time recovery, TTL, encryption with the AWS managed key, and retention on stack
    deletion."""
    table = dynamodb.Table(
        scope,
        definition.logical_name,
        partition_key=dynamodb.Attribute(name=definition.key.partition_key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=definition.key.sort_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=definition.ttl_attribute,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        removal_policy=RemovalPolicy.RETAIN,
        stream=dynamodb.StreamViewType(stream_view_type) if stream_view_type else None,
    )
    for name, index in definition.indexes.items():
        table.add_global_secondary_index(
            index_name=name,
            partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
    return table


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        stream_view_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.table_definition = COACH_TABLE
        self.table = build_table(self, COACH_TABLE, stream_view_type)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access logging cannot deliver to SSE-KMS
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(max(config.log_retention_days, 90)))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            reason="This is the access-log bucket itself: logging it into itself would loop, and into "
            "another bucket would only move the finding there.",
        )
        self.uploads = s3.Bucket(
            self,
            "Uploads",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        # An explicit export (not CDK's generated one) so the API stack's policy names the bucket the same
        # way before and after synthesis, and its cdk-nag acknowledgment matches in both.
        self.uploads_arn_export = f"{config.stack_prefix}-uploads-bucket-arn"
        CfnOutput(self, "UploadsBucketArn", value=self.uploads.bucket_arn, export_name=self.uploads_arn_export)
