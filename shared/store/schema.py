"""The single table's definition: the one source for the CDK stack and the local DynamoDB.

Plain data, no boto3 and no CDK, so both sides import it cheaply and cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeySchema:
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableDefinition:
    logical_name: str
    key: KeySchema
    indexes: dict[str, KeySchema] = field(default_factory=dict)
    ttl_attribute: str = "expiresAt"

    def attribute_names(self) -> list[str]:
        names = [self.key.partition_key, self.key.sort_key]
        for index in self.indexes.values():
            names += [index.partition_key, index.sort_key]
        return list(dict.fromkeys(names))

    def create_table_request(self, table_name: str) -> dict[str, Any]:
        """The CreateTable request for this definition (on-demand capacity, all attributes strings)."""

        def key_schema(key: KeySchema) -> list[dict[str, str]]:
            return [
                {"AttributeName": key.partition_key, "KeyType": "HASH"},
                {"AttributeName": key.sort_key, "KeyType": "RANGE"},
            ]

        request: dict[str, Any] = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": key_schema(self.key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in self.attribute_names()],
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {"IndexName": name, "KeySchema": key_schema(index), "Projection": {"ProjectionType": "ALL"}}
                for name, index in self.indexes.items()
            ]
        return request


COACH_TABLE = TableDefinition(
    logical_name="CoachTable",
    key=KeySchema(partition_key="pk", sort_key="sk"),
    ttl_attribute="expiresAt",
)
TABLE_NAME_ENV = "COACH_TABLE_NAME"
