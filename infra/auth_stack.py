"""The auth stack: a Cognito user pool whose tokens carry `custom:user_id`, and the web app's client.

`custom:user_id` decides whose data a token reaches (every key, path and S3 prefix is scoped by it),
so no user may choose it: the attribute is immutable and the app client may read it but not write it.
It is set when an administrator (or a trusted back end) creates the user.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.config import InfraConfig
from infra.nag import acknowledge

USER_ID_ATTRIBUTE = "user_id"  # the token claim is custom:user_id


class AuthStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=f"{config.name_prefix}-users",
            self_sign_up_enabled=config.self_sign_up,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            custom_attributes={
                USER_ID_ATTRIBUTE: cognito.StringAttribute(min_len=1, max_len=128, mutable=False),
            },
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            reason="MFA is offered (TOTP) but not forced: the coach is a consumer app whose data is the "
            "user's own training notes; forcing MFA is a product decision, not an infrastructure default.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            reason="The Plus feature plan is billed per monthly active user; Essentials with a strong "
            "password policy is the default, and raising feature_plan is a one-line change here.",
        )
        self.client = self.user_pool.add_client(
            "WebClient",
            user_pool_client_name=f"{config.name_prefix}-web",
            generate_secret=False,  # a browser app cannot keep a secret
            auth_flows=cognito.AuthFlow(user_srp=True),
            # the app signs in with SRP, not the hosted UI: without this the CDK enables the OAuth
            # implicit and code grants with a placeholder callback URL (https://example.com)
            disable_o_auth=True,
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes(USER_ID_ATTRIBUTE),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
        )

    @property
    def issuer(self) -> str:
        """The `iss` of the pool's tokens (what JWT_ISSUER must equal), built the way Cognito documents it
        and CDK's own user-pool authorizer builds it: the pool's `ProviderURL` attribute is not documented
        to carry the `https://` scheme that the tokens' `iss` has."""
        stack = Stack.of(self)
        return f"https://cognito-idp.{stack.region}.{stack.url_suffix}/{self.user_pool.user_pool_id}"
