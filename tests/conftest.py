"""What every test session runs on, unless whoever runs the tests exports otherwise: the example sources
(connectors/wiki, tickets and crm), which the tests write by SQL, and no real application. The
applications' suite (`make applications`) names the applications it runs. Set before any settings are
read, so that this process and the workers and commands it starts agree."""

from __future__ import annotations

import os

TEST_SOURCES = {
    "STREAMS_EXAMPLE_SOURCES": "1",
    "STREAMS_STACK_APPS": "none",
}
for _name, _value in TEST_SOURCES.items():
    os.environ.setdefault(_name, _value)
