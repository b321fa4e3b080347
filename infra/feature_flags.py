"""The streaming flags in AWS AppConfig: application, environment, a freeform profile, and a strategy
that deploys a new version at once, so turning streaming off is one deployment, seconds, no function update.

The profile is freeform JSON in Powertools Feature Flags' own schema (`shared/flags.py`): Powertools'
`AppConfigStore` validates what AppConfig Data returns against that schema, and a profile of the
`AWS.AppConfig.FeatureFlags` type returns a different document (`{"flag": {"enabled": ...}}`), which
it would refuse. A JSON Schema validator on the profile refuses a bad document at `start-deployment`.

Names are fixed (`FlagNames`), so the functions find the profile by name, the runbook's commands name
it, and the local stack reads the same names from the template. Each function that reads the flags
may start a session and poll on this one profile, nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_appconfig as appconfig
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import InfraConfig
from shared.flags import DOCUMENT_SCHEMA, FlagValues

# AppConfig's deployment strategy limits: growth in percent, durations in minutes.
IMMEDIATE = {"growth_factor": 100, "deployment_duration_minutes": 0, "final_bake_time_minutes": 0}
READ_ACTIONS = ("appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration")


@dataclass(frozen=True)
class FlagNames:
    application: str
    environment: str
    profile: str
    strategy: str

    @classmethod
    def of(cls, name_prefix: str) -> FlagNames:
        return cls(
            application=name_prefix,
            environment="live",
            profile="streaming-flags",
            strategy=f"{name_prefix}-immediate",
        )

    def variables(self, max_age_seconds: int) -> dict[str, str]:
        """What a function that reads the flags is told (`shared.settings.FlagSettings`)."""
        return {
            "APPCONFIG_APPLICATION": self.application,
            "APPCONFIG_ENVIRONMENT": self.environment,
            "APPCONFIG_FLAGS_PROFILE": self.profile,
            "FLAGS_MAX_AGE_SECONDS": str(max_age_seconds),
        }


class StreamingFlags(Construct):
    """The AppConfig side of `shared/flags.py`, first deployed with the stack's configured values."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        self.names = FlagNames.of(config.name_prefix)
        self.max_age_seconds = config.flags_max_age_seconds
        initial = FlagValues(config.streaming_enabled, config.streaming_percentage)
        self.application = appconfig.Application(
            self,
            "Application",
            application_name=self.names.application,
            description="coach-stream: runtime switches (streaming on/off, rollout percentage)",
        )
        self.environment = appconfig.Environment(
            self,
            "Environment",
            application=self.application,
            environment_name=self.names.environment,
            description="What the deployed functions read",
        )
        self.strategy = appconfig.DeploymentStrategy(
            self,
            "Immediate",
            deployment_strategy_name=self.names.strategy,
            description="All targets at once, no bake: a rollback takes effect at the functions' next read",
            rollout_strategy=appconfig.RolloutStrategy.linear(
                growth_factor=IMMEDIATE["growth_factor"],
                deployment_duration=Duration.minutes(IMMEDIATE["deployment_duration_minutes"]),
                final_bake_time=Duration.minutes(IMMEDIATE["final_bake_time_minutes"]),
            ),
        )
        self.profile = appconfig.HostedConfiguration(
            self,
            "Profile",
            application=self.application,
            name=self.names.profile,
            type=appconfig.ConfigurationType.FREEFORM,
            content=appconfig.ConfigurationContent.from_inline_json(json.dumps(initial.document(), sort_keys=True)),
            validators=[appconfig.JsonSchemaValidator.from_inline(json.dumps(DOCUMENT_SCHEMA, sort_keys=True))],
            deployment_strategy=self.strategy,
            deploy_to=[self.environment],
            description="Powertools Feature Flags schema: streaming_enabled (boolean), streaming_percentage (0-100)",
        )

    @property
    def profile_arn(self) -> str:
        """What AppConfig Data authorizes both calls on: the profile within this environment."""
        return Stack.of(self).format_arn(
            service="appconfig",
            resource="application",
            resource_name=(
                f"{self.application.application_id}/environment/{self.environment.environment_id}"
                f"/configuration/{self.profile.configuration_profile_id}"
            ),
        )

    def variables(self) -> dict[str, str]:
        return self.names.variables(self.max_age_seconds)

    def grant_read(self, role: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(grantee=role, actions=list(READ_ACTIONS), resource_arns=[self.profile_arn])
