"""Lambda Managed Instances (`managedInstances=true`): the network and the capacity provider the streaming
functions run on, in a stack of their own (`<prefix>Compute`).

A capacity provider launches EC2 instances in the subnets it is given, and the functions on it run there:
their calls to DynamoDB, S3, Bedrock Runtime, CloudWatch Logs, X-Ray and the user pool's public JWKS URL
leave from this VPC. So the VPC has private subnets in two Availability Zones with egress through one NAT
gateway, and gateway endpoints (no hourly charge) for DynamoDB and S3 so the table and the uploads never
cross the NAT. The instances' security group takes no inbound traffic at all. VPC flow logs record every
flow, kept as long as the functions' logs.

Why its own stack: the VPC, the NAT gateway and the capacity provider outlive any function deployment, a
function cannot be moved off a capacity provider once on it (only to another), and a failed or rolled
back Api stack update then never touches the network. The Api stack imports the provider's ARN.

The operator role is trusted by lambda.amazonaws.com and has the AWS managed policy
`AWSLambdaManagedEC2ResourceOperator` (what the Lambda developer guide prescribes for it), plus writing
to the capacity provider's own log group. The instances' architecture is the functions' own
(`InstanceRequirements.Architectures` must match the functions').
"""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import SETTINGS, ConfigError, InfraConfig
from infra.functions import lambda_architecture
from infra.nag import acknowledge

OPERATOR_POLICY = "AWSLambdaManagedEC2ResourceOperator"
# A function takes its capacity provider when it is created, not in an update, and CloudFormation can only
# replace a function under a new name: so a function on Managed Instances is named apart (`<name>-mi`),
# and switching managedInstances either way replaces the streaming functions (and their URLs) cleanly.
FUNCTION_NAME_SUFFIX = "-mi"
MAX_FUNCTION_NAME = 64
PRIVATE_SUBNET_MASK = 20  # room for the instances' network interfaces in each zone
PUBLIC_SUBNET_MASK = 24  # only the NAT gateway lives there
AVAILABILITY_ZONES = 2
# A published version starts three execution environments (one per instance, for AZ resilience) before it
# turns ACTIVE; the provider's vCPU ceiling must hold them for every function on it.
MIN_EXECUTION_ENVIRONMENTS = 3


class ManagedInstancesStack(Stack):
    """The VPC (with flow logs and gateway endpoints), the instances' security group, and the capacity provider."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=AVAILABILITY_ZONES,
            nat_gateways=1,  # one NAT gateway: its hourly charge once, not once per zone
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_SUBNET_MASK),
                ec2.SubnetConfiguration(
                    name="Instances", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=PRIVATE_SUBNET_MASK
                ),
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
            },
        )
        flow_logs = logs.LogGroup(self, "FlowLogs")
        cast(logs.CfnLogGroup, flow_logs.node.default_child).retention_in_days = config.log_retention_days
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "InstancesSecurityGroup",
            vpc=self.vpc,
            description="coach-stream Managed Instances: outbound only (the functions call out, nothing calls in)",
            allow_all_outbound=True,
        )
        self.operator_role = iam.Role(
            self,
            "OperatorRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(OPERATOR_POLICY)],
            description="Lambda Managed Instances: launches and manages the capacity provider's EC2 instances",
        )
        acknowledge(
            self.operator_role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{OPERATOR_POLICY}]",
            reason=f"The capacity provider's operator role is assumed by Lambda itself to launch, tag and retire "
            f"the EC2 instances it manages; {OPERATOR_POLICY} is the policy the Lambda developer guide prescribes "
            "for it, and AWS keeps it in step with what the service needs.",
        )
        # The capacity provider's system logs, with the app's retention rather than Lambda's default group
        # (kept forever); the operator role delivers them, so it may write here.
        system_logs = logs.LogGroup(self, "CapacityProviderLogs")
        cast(logs.CfnLogGroup, system_logs.node.default_child).retention_in_days = config.log_retention_days
        system_logs.grant_write(self.operator_role)
        self.capacity_provider = lambda_.CapacityProvider(
            self,
            "CapacityProvider",
            subnets=self.vpc.private_subnets,
            security_groups=[self.security_group],
            architectures=[lambda_architecture(config.architecture)],
            max_v_cpu_count=config.managed_instances_max_vcpu,
            scaling_options=lambda_.ScalingOptions.auto(),
            operator_role=self.operator_role,
            log_group=system_logs,
        )

    def check_capacity(self, functions: int) -> None:
        """Fail the synth when the vCPU ceiling cannot hold the execution environments that publishing starts."""
        config = self.config
        needed = functions * MIN_EXECUTION_ENVIRONMENTS * config.managed_instances_vcpus
        if config.managed_instances_max_vcpu < needed:
            setting = SETTINGS["managed_instances_max_vcpu"]
            raise ConfigError(
                f"{setting.context_key} ({setting.env_var}): at least {needed} for {functions} function(s) x "
                f"{MIN_EXECUTION_ENVIRONMENTS} execution environments x {config.managed_instances_vcpus} vCPU, "
                f"not {config.managed_instances_max_vcpu}"
            )
