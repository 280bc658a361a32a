"""The clouds' control planes: ECR tokens and API, OCIR logins and repository creation."""
