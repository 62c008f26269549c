"""The people that the seeded sources share.

Staff (at ``example.com``) sign in to the wiki with their email (SSO), work tickets and write CRM
notes, so every staff member can appear in all three sources. Customers work at a few companies;
they raise and comment on tickets and are CRM contacts. A person's email is the subject that a
forget request names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

STAFF_DOMAIN = "example.com"

FIRST_NAMES = (
    "Aisha",
    "Alejandro",
    "Amara",
    "Anders",
    "Ananya",
    "Beatriz",
    "Bogdan",
    "Carmen",
    "Chen",
    "Chloe",
    "Dmitri",
    "Elena",
    "Emeka",
    "Fatima",
    "Felix",
    "Giulia",
    "Hana",
    "Hiroshi",
    "Ingrid",
    "Isabel",
    "Jamal",
    "Jana",
    "Javier",
    "Kai",
    "Kateryna",
    "Kwame",
    "Lars",
    "Leila",
    "Liam",
    "Lucia",
    "Malik",
    "Marta",
    "Mateo",
    "Mei",
    "Mohammed",
    "Nadia",
    "Niamh",
    "Nikhil",
    "Noor",
    "Olga",
    "Omar",
    "Priya",
    "Rafael",
    "Rania",
    "Ravi",
    "Rosa",
    "Samuel",
    "Sara",
    "Sebastian",
    "Sofia",
    "Sven",
    "Tamar",
    "Thabo",
    "Tomasz",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zainab",
    "Zoe",
)
LAST_NAMES = (
    "Abebe",
    "Andersson",
    "Bianchi",
    "Brennan",
    "Castillo",
    "Chowdhury",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gupta",
    "Haddad",
    "Hansen",
    "Ibrahim",
    "Ivanova",
    "Jansen",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lee",
    "Lindqvist",
    "Mbeki",
    "Moreau",
    "Murphy",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Oliveira",
    "Osei",
    "Park",
    "Patel",
    "Petrov",
    "Quispe",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Vasquez",
    "Walsh",
    "Wang",
    "Weber",
    "Yamamoto",
    "Yilmaz",
    "Zhang",
)

# (company name, email domain, industry)
COMPANIES = (
    ("Acme Logistics", "acme-logistics.com", "Transportation"),
    ("Globex Retail", "globex.com", "Retail"),
    ("Initech Software", "initech.io", "Software"),
    ("Umbrella Health", "umbrella-health.org", "Healthcare"),
    ("Hooli Media", "hooli.net", "Media"),
    ("Stark Energy", "stark-energy.com", "Energy"),
    ("Wayne Financial", "waynefinancial.com", "Financial Services"),
    ("Tyrell Robotics", "tyrell.ai", "Manufacturing"),
    ("Cyberdyne Systems", "cyberdyne.dev", "Software"),
    ("Soylent Foods", "soylent-foods.com", "Food & Beverage"),
    ("Wonka Confectionery", "wonka.co.uk", "Food & Beverage"),
    ("Vandelay Industries", "vandelay.com", "Import/Export"),
)

STAFF_TEAMS = ("support", "engineering", "billing", "sales", "exec")
_TEAM_WEIGHTS = (5, 5, 2, 3, 1)
STAFF_TITLES = {
    "support": ("Support Engineer", "Senior Support Engineer", "Support Team Lead"),
    "engineering": ("Software Engineer", "Site Reliability Engineer", "Staff Engineer", "Engineering Manager"),
    "billing": ("Billing Specialist", "Revenue Operations Analyst"),
    "sales": ("Account Executive", "Customer Success Manager", "Sales Engineer"),
    "exec": ("VP Engineering", "Chief Customer Officer", "VP Sales"),
}
CUSTOMER_TITLES = (
    "DevOps Engineer",
    "Database Administrator",
    "IT Manager",
    "CTO",
    "Data Engineer",
    "Platform Lead",
    "Procurement Manager",
    "Head of Analytics",
    "Backend Developer",
    "Operations Director",
)


@dataclass(frozen=True)
class Person:
    first_name: str
    last_name: str
    email: str
    company: str
    domain: str
    title: str
    team: str  # for staff the team they work in; "customer" for customers
    phone: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def is_staff(self) -> bool:
        return self.domain == STAFF_DOMAIN


@dataclass(frozen=True)
class People:
    staff: tuple[Person, ...]
    customers: tuple[Person, ...]

    def staff_in(self, rng: random.Random, *teams: str) -> Person:
        pool = [p for p in self.staff if p.team in teams] or list(self.staff)
        return rng.choice(pool)


def people_count(docs: int) -> tuple[int, int]:
    """How many staff and customers a seed of ``docs`` documents shares out."""
    return max(12, min(300, docs // 40)), max(20, min(5000, docs // 10))


def make_people(rng: random.Random, staff_count: int, customer_count: int) -> People:
    taken: set[str] = set()
    teams = rng.choices(STAFF_TEAMS, weights=_TEAM_WEIGHTS, k=staff_count)
    # Every team has somebody in it, whatever the counts.
    teams[: len(STAFF_TEAMS)] = STAFF_TEAMS
    staff = tuple(
        _person(rng, taken, "Example Corp", STAFF_DOMAIN, rng.choice(STAFF_TITLES[team]), team) for team in teams
    )
    customers = []
    for _ in range(customer_count):
        company, domain, _industry = rng.choice(COMPANIES)
        customers.append(_person(rng, taken, company, domain, rng.choice(CUSTOMER_TITLES), "customer"))
    return People(staff=staff, customers=tuple(customers))


def _person(rng: random.Random, taken: set[str], company: str, domain: str, title: str, team: str) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower()
    email, n = f"{local}@{domain}", 1
    while email in taken:
        n += 1
        email = f"{local}{n}@{domain}"
    taken.add(email)
    phone = f"+1-{rng.randint(200, 989)}-555-{rng.randint(0, 9999):04d}"
    return Person(first, last, email, company, domain, title, team, phone)
