"""IAM resources for invoking a configured Bedrock model id: exactly that model, nothing broader.

A cross-Region (system-defined) inference profile such as `us.anthropic.claude-sonnet-4-5-...` needs
`bedrock:InvokeModel*` on the profile in this Region and on the foundation model in each Region the
profile routes to (any Region, since the routing set is AWS's to change). A plain foundation model id
needs only the model in this Region. A full ARN (an application inference profile) is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Geographic prefixes of system-defined cross-Region inference profiles.
PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


@dataclass(frozen=True)
class ModelResources:
    profiles: list[str] = field(default_factory=list)  # ARNs in this Region and account
    foundation_models: list[str] = field(default_factory=list)


def split_profile(model_id: str) -> tuple[str | None, str]:
    """`us.amazon.nova-micro-v1:0` -> (`us`, `amazon.nova-micro-v1:0`); a plain model id -> (None, id)."""
    prefix, _, rest = model_id.partition(".")
    if prefix in PROFILE_PREFIXES and "." in rest:
        return prefix, rest
    return None, model_id


def model_resources(model_ids: list[str], *, partition: str, region: str, account: str) -> ModelResources:
    result = ModelResources()
    for model_id in dict.fromkeys(model_ids):
        if model_id.startswith("arn:"):
            result.profiles.append(model_id)
            continue
        prefix, model = split_profile(model_id)
        if prefix is None:
            result.foundation_models.append(f"arn:{partition}:bedrock:{region}::foundation-model/{model}")
            continue
        result.profiles.append(f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}")
        result.foundation_models.append(f"arn:{partition}:bedrock:*::foundation-model/{model}")
        if prefix == "global":  # global profiles name the model without a Region
            result.foundation_models.append(f"arn:{partition}:bedrock:::foundation-model/{model}")
    return result
