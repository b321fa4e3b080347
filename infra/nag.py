"""Acknowledging cdk-nag findings (cdk-nag 3.x): CDK's own `Validations.of(scope).acknowledge(...)`.

cdk-nag 3 replaced `NagSuppressions` with CDK's validation acknowledgments. An acknowledgment covers its
construct and everything below it, and each finding of a granular rule (IAM5) is acknowledged by its
own id, `RuleId[Finding]`. Every call here carries its reason, which lands in the construct metadata.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {rule_id} needs a real reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
