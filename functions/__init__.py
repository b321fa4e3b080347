"""One folder per Lambda function; `catalog` lists them for the CDK app and the local stack."""
