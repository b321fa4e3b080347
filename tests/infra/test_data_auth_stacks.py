"""The data stack (table from shared/store/schema.py, uploads bucket) and the auth stack (user pool)."""

from __future__ import annotations

from aws_cdk.assertions import Match

from shared.store.schema import COACH_TABLE
from tests.infra.cfn import resources


def _table(real):
    (table,) = resources(real.raw("data"), "AWS::DynamoDB::Table").values()
    return table


def test_table_is_the_schema_the_local_dynamodb_uses(real):
    props = _table(real)["Properties"]
    local = COACH_TABLE.create_table_request("ignored")
    assert props["KeySchema"] == local["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        local["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    deployed = {g["IndexName"]: g for g in props.get("GlobalSecondaryIndexes", [])}
    expected = {g["IndexName"]: g for g in local.get("GlobalSecondaryIndexes", [])}
    assert set(deployed) == set(expected)
    for name, index in expected.items():
        assert deployed[name]["KeySchema"] == index["KeySchema"]
        assert deployed[name]["Projection"] == index["Projection"]


def test_table_point_in_time_recovery_ttl_encryption_retention(real):
    table = _table(real)
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": COACH_TABLE.ttl_attribute, "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_uploads_bucket_encrypted_tls_only_private_and_logged(real):
    template = real.template("data")
    buckets = resources(real.raw("data"), "AWS::S3::Bucket")
    assert len(buckets) == 2  # uploads + its access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"
        }
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    uploads_id = next(k for k in buckets if k.startswith("Uploads"))
    assert "LoggingConfiguration" in buckets[uploads_id]["Properties"]
    policies = resources(real.raw("data"), "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": uploads_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Principal": {"AWS": "*"},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_user_pool_carries_an_immutable_custom_user_id(real):
    (pool,) = resources(real.raw("auth"), "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    schema = {a["Name"]: a for a in props["Schema"]}
    assert schema["user_id"]["AttributeDataType"] == "String"
    assert schema["user_id"]["Mutable"] is False
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up by default
    policy = props["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 8
    assert all(policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))


def test_app_client_reads_but_cannot_write_custom_user_id(real):
    (client,) = resources(real.raw("auth"), "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert "custom:user_id" in props["ReadAttributes"]
    assert "custom:user_id" not in props["WriteAttributes"]
    assert props["GenerateSecret"] is False
    assert props["PreventUserExistenceErrors"] == "ENABLED"


def test_app_client_has_no_oauth_flow_and_no_placeholder_callback(real):
    """The app signs in with SRP; an implicit grant to a placeholder URL would hand tokens to anyone."""
    (client,) = resources(real.raw("auth"), "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert not props.get("AllowedOAuthFlows")
    assert not props.get("AllowedOAuthFlowsUserPoolClient")
    assert not props.get("CallbackURLs")
