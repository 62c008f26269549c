"""Generate support tickets: a customer's report of a real-looking failure, 0-6 follow-up comments
by the customer and by staff (some internal), a status, a priority and the groups that may see it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.sources.people import People, Person
from streams.sources.timeline import EPOCH

PRODUCTS = (
    "Streams Cloud",
    "Ingest Gateway",
    "Analytics API",
    "Billing Portal",
    "Mobile SDK",
    "SSO Connector",
    "Data Export",
    "Managed PostgreSQL",
    "Search Console",
    "Webhooks",
)
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Category:
    name: str
    groups: tuple[str, ...]  # the first is the ticket's assigned group
    errors: tuple[str, ...]
    actions: tuple[str, ...]  # "... when we <action>"
    fixes: tuple[str, ...]  # what staff eventually did


CATEGORIES = (
    Category(
        "database",
        ("support", "engineering"),
        (
            "ERROR: deadlock detected",
            "ERROR: could not serialize access due to concurrent update",
            "FATAL: remaining connection slots are reserved for non-replication superuser connections",
            "ERROR: canceling statement due to statement timeout",
            'ERROR: could not extend file "base/16384/24576": No space left on device',
            'ERROR: duplicate key value violates unique constraint "orders_pkey"',
        ),
        (
            "run the nightly import",
            "bulk update order statuses",
            "rebuild the reporting tables",
            "run two migrations at once",
            "replay the event backlog",
        ),
        (
            "raised max_connections and added PgBouncer in transaction mode",
            "reordered the updates so both jobs lock rows in primary-key order",
            "grew the volume and enabled storage autoscaling",
            "added a retry on serialization failures",
        ),
    ),
    Category(
        "infrastructure",
        ("support", "engineering"),
        (
            "OOMKilled",
            "CrashLoopBackOff",
            "ImagePullBackOff: manifest unknown",
            "context deadline exceeded",
            "read tcp 10.2.3.4:5432: connection reset by peer",
            "java.lang.OutOfMemoryError: Java heap space",
        ),
        (
            "scale the ingest workers",
            "deploy the 4.2 release",
            "start the batch exporter",
            "roll the nodes to the new instance type",
            "run the weekly compaction",
        ),
        (
            "raised the memory limit from 512Mi to 2Gi",
            "pinned the image digest in the deployment",
            "moved the exporter to the larger node pool",
            "fixed a leak in the batch buffer (release 4.2.3)",
        ),
    ),
    Category(
        "network",
        ("support", "engineering"),
        (
            "SSL handshake failed",
            "x509: certificate has expired or is not yet valid",
            "HTTP 502 Bad Gateway",
            "HTTP 504 Gateway Timeout",
            "connect ECONNREFUSED 10.0.4.17:443",
            "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL",
        ),
        (
            "call the ingest endpoint from our EU region",
            "rotate our client certificates",
            "upload files larger than 100 MB",
            "connect through the corporate proxy",
        ),
        (
            "renewed the intermediate certificate on the EU load balancer",
            "raised the proxy read timeout to 120 s",
            "re-enabled TLS 1.2 for legacy clients",
            "fixed the health check that marked healthy backends down",
        ),
    ),
    Category(
        "api",
        ("support", "engineering"),
        (
            "HTTP 429 Too Many Requests",
            "HTTP 401 Unauthorized: invalid_token",
            "HTTP 500 Internal Server Error",
            "TimeoutError: request timed out after 30000ms",
            "HTTP 400: field 'created_at' must be RFC 3339",
            "HTTP 413 Payload Too Large",
        ),
        (
            "page through /v2/events",
            "refresh OAuth tokens",
            "post batches of 5,000 records",
            "sync contacts every minute",
        ),
        (
            "raised the account's rate limit to 600 requests per minute",
            "fixed token refresh so it no longer races the expiry",
            "documented the 10 MB batch limit",
            "fixed a 500 on empty cursor pages (API 2.14.1)",
        ),
    ),
    Category(
        "billing",
        ("billing", "support"),
        (
            "card_declined: insufficient_funds",
            "invoice charged twice",
            "Payment failed: card_declined",
            "tax ID rejected: invalid VAT number",
            "proration credit missing",
        ),
        ("upgrade to the Business plan", "add twenty seats", "change the billing contact", "pay the quarterly invoice"),
        (
            "refunded the duplicate charge",
            "reissued the invoice with the VAT number",
            "applied the proration credit to the next invoice",
            "updated the payment method on file",
        ),
    ),
    Category(
        "access",
        ("support", "engineering"),
        (
            "SAML response signature validation failed",
            "User not provisioned: SCIM 409 Conflict",
            "MFA challenge loops back to the login page",
            "HTTP 403 Forbidden: missing role 'admin'",
        ),
        (
            "sign in through Okta",
            "provision new hires through SCIM",
            "log in from the mobile app",
            "invite a contractor",
        ),
        (
            "re-uploaded the IdP signing certificate",
            "removed the stale SCIM user and re-synced",
            "fixed the redirect URI for the mobile app",
            "granted the admin role through the group mapping",
        ),
    ),
)
CATEGORY_WEIGHTS = (4, 4, 3, 3, 2, 2)

_SUBJECTS = (
    "{product}: {error} when we {action}",
    "{error} in {product}",
    "Urgent: {product} failing with {error}",
    "{product} intermittently returns {error}",
    "Since {day}: {error} ({product})",
    "Cannot {action}: {error}",
)
_OPENINGS = (
    "Hi team,",
    "Hello support,",
    "Hi,",
    "Good morning,",
    "Hi there,",
)
_PROBLEMS = (
    'Since {day} {product} has been failing with "{error}" whenever we {action}.',
    'We see "{error}" from {product} about {count} times an hour, mostly when we {action}.',
    'Every attempt to {action} ends with "{error}". This worked fine until {day}.',
    'After your maintenance window on {day}, {product} started returning "{error}" when we {action}.',
)
_DETAILS = (
    "Environment: {product} in {region}, our client version {version}. The log shows:\n"
    "{time} {error}\n{time} retrying (attempt 3 of 5)\n{time} {error}",
    "It affects roughly {percent}% of requests in {region}. We have not changed anything on our side "
    "since the {version} upgrade.",
    "Request id {request_id}, region {region}. Restarting the job helps for an hour or so, then the error comes back.",
    "We checked our side: the network path is fine and other services in {region} work. The first "
    "occurrence was at {time} UTC.",
)
_IMPACTS = (
    "This blocks our month-end reporting.",
    "Our customers are seeing failed checkouts.",
    "It is not urgent, but the noise in our alerts is painful.",
    "The on-call engineer has been paged four times tonight.",
    "Our launch on Monday depends on this.",
)
_COLLEAGUES = (
    "My colleague {name} ({email}) can share more logs if needed.",
    "Please keep {name} ({email}) in copy; they run this system with me.",
    "{name} from our platform team ({email}) first noticed it.",
)
_AGENT_REPLIES = (
    "Hi {first}, thanks for the report. Could you send the full log around {time} UTC and the request "
    "id of one failing call? That will let us match it with our traces.",
    'Hi {first}, I can reproduce "{error}" in our staging copy of {product}. I am escalating this to '
    "engineering and will update you within four hours.",
    "Hi {first}, as a workaround you can retry with exponential backoff; that should keep you going "
    "while we investigate the {error}.",
    "Hi {first}, we have identified the cause and a fix is being deployed to {region} now.",
)
_INTERNAL_NOTES = (
    'Internal: @{eng} can you take a look? Same "{error}" signature as last week\'s incident in {region}.',
    "Internal: customer is on the {plan} plan; {owner} from sales asked us to prioritise.",
    "Internal: traced to a config drift in {region}. Engineering ticket ENG-{n} opened.",
)
_CUSTOMER_REPLIES = (
    "Thanks. Attached the log; request id {request_id}. It happened again at {time} UTC.",
    'We tried the workaround, but we still get "{error}" about half of the time.',
    "Any update? This is now affecting production for {name} ({email}) and their team.",
    "Confirmed, it works for us now. Thank you for the quick help!",
)
_RESOLUTIONS = (
    'Hi {first}, we {fix}. Please let us know if you see "{error}" again; otherwise this ticket will '
    "close automatically in 3 days.",
    "Hi {first}, the fix is live: we {fix}. I am marking this ticket as solved.",
)
REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2", "eu-central-1")
PLANS = ("Starter", "Business", "Enterprise")


@dataclass(frozen=True)
class CommentSeed:
    author: Person
    body: str
    public: bool
    created_at: datetime


@dataclass(frozen=True)
class TicketSeed:
    subject: str
    description: str
    status: str
    priority: str
    product: str
    requester: Person
    assignee: Person | None
    group: str
    groups: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    comments: tuple[CommentSeed, ...]
    colleague: Person | None = None  # a colleague of the requestor the description names, with their address


def generate_tickets(rng: random.Random, people: People, count: int) -> Iterator[TicketSeed]:
    for _ in range(count):
        yield _ticket(rng, people)


def _ticket(rng: random.Random, people: People) -> TicketSeed:
    category = rng.choices(CATEGORIES, weights=CATEGORY_WEIGHTS)[0]
    requester = rng.choice(people.customers)
    created = EPOCH - timedelta(days=rng.uniform(0, 365), seconds=rng.randint(0, 86_399))
    product = rng.choice(PRODUCTS)
    facts: dict[str, object] = {
        "product": product,
        "error": rng.choice(category.errors),
        "action": rng.choice(category.actions),
        "fix": rng.choice(category.fixes),
        "day": (created - timedelta(days=rng.randint(0, 6))).strftime("%A %B %-d"),
        "time": (created - timedelta(minutes=rng.randint(5, 600))).strftime("%Y-%m-%d %H:%M:%S"),
        "region": rng.choice(REGIONS),
        "version": f"{rng.randint(2, 5)}.{rng.randint(0, 14)}.{rng.randint(0, 9)}",
        "count": rng.randint(3, 200),
        "percent": rng.randint(1, 40),
        "request_id": f"req_{rng.getrandbits(48):012x}",
        "first": requester.first_name,
        "plan": rng.choice(PLANS),
        "n": rng.randint(1000, 9999),
    }
    priority = rng.choices(PRIORITIES, weights=(2, 5, 3, 1))[0]
    paragraphs = [
        rng.choice(_OPENINGS),
        rng.choice(_PROBLEMS).format(**facts),
        rng.choice(_DETAILS).format(**facts),
        rng.choice(_IMPACTS),
    ]
    colleague = _colleague(rng, people, requester)
    if colleague is not None:
        paragraphs.append(rng.choice(_COLLEAGUES).format(name=colleague.name, email=colleague.email))
    paragraphs.append(f"Thanks,\n{requester.name}\n{requester.title}, {requester.company}")
    assignee = people.staff_in(rng, *category.groups[:1]) if rng.random() < 0.85 else None
    comments, resolved = _comments(rng, people, requester, assignee, category, facts, colleague or requester, created)
    if resolved:
        status = rng.choice(("solved", "closed"))
    elif not comments:
        status = "new" if assignee is None else rng.choice(("new", "open"))
    else:
        status = rng.choice(("open", "pending"))
    groups = category.groups
    if priority == "urgent" and rng.random() < 0.5:
        groups = (*groups, "exec")
    if rng.random() < 0.1 and "sales" not in groups:
        groups = (*groups, "sales")
    return TicketSeed(
        subject=rng.choice(_SUBJECTS).format(**facts),
        description="\n\n".join(paragraphs),
        status=status,
        priority=priority,
        product=product,
        requester=requester,
        assignee=assignee,
        group=category.groups[0],
        groups=groups,
        created_at=created,
        updated_at=comments[-1].created_at if comments else created,
        comments=comments,
        colleague=colleague,
    )


def _colleague(rng: random.Random, people: People, requester: Person) -> Person | None:
    if rng.random() > 0.35:
        return None
    same_company = [p for p in people.customers[:200] if p.domain == requester.domain and p != requester]
    return rng.choice(same_company) if same_company else None


def _comments(
    rng: random.Random,
    people: People,
    requester: Person,
    assignee: Person | None,
    category: Category,
    facts: dict[str, object],
    other: Person,
    created: datetime,
) -> tuple[tuple[CommentSeed, ...], bool]:
    """The comments, and whether the last of them resolves the ticket."""
    count = rng.choices(range(7), weights=(2, 3, 3, 3, 2, 1, 1))[0]
    agent = assignee or people.staff_in(rng, *category.groups[:1])
    engineer = people.staff_in(rng, "engineering")
    owner = people.staff_in(rng, "sales")
    values = {**facts, "eng": engineer.name, "owner": owner.name, "name": other.name, "email": other.email}
    when = created
    comments = []
    resolved = False
    for n in range(count):
        when += timedelta(minutes=rng.randint(10, 2880))
        if n == count - 1 and count >= 3 and rng.random() < 0.6:
            author, body, public = agent, rng.choice(_RESOLUTIONS), True
            resolved = True
        elif n % 2 == 0:
            if rng.random() < 0.25:
                author, body, public = rng.choice((agent, engineer)), rng.choice(_INTERNAL_NOTES), False
            else:
                author, body, public = agent, rng.choice(_AGENT_REPLIES), True
        else:
            author, body, public = requester, rng.choice(_CUSTOMER_REPLIES[:3]), True
            if n == count - 1 and rng.random() < 0.5:
                body = _CUSTOMER_REPLIES[3]
                resolved = True
        comments.append(CommentSeed(author, body.format(**values), public, when))
    return tuple(comments), resolved
