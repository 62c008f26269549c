"""The JVM servers' shared launch: java binary, heap, the log4j2 resource."""

from __future__ import annotations

import shutil
from pathlib import Path

LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")


def java_home() -> Path:
    if (JDK17 / "bin" / "java").exists():
        return JDK17
    found = shutil.which("java")
    if found is None:
        from streams.stack.runner import StackError

        raise StackError("no java found: install OpenJDK 17 (apt-get install -y openjdk-17-jre-headless)")
    return Path(found).resolve().parent.parent


def java_command(libs: Path, main_class: str, *args: str, heap: str = "512m") -> list[str]:
    return [
        str(java_home() / "bin" / "java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]
