"""The package list, in code because pyproject.toml's finder only looks under streams/: the top-level
schemas/ and connectors/ folders ship inside the package as streams.schemas and streams.connectors
(found at run time by streams/resources.py). Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["streams*"]),
        "streams.schemas",
        "streams.schemas.history",
        "streams.connectors",
    ],
    package_dir={"streams.schemas": "schemas", "streams.connectors": "connectors"},
)
