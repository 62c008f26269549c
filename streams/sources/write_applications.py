"""Write through the real applications' own code: MediaWiki's action API and Request Tracker's REST 2
API, each as a logged-in user, so the rows are the ones the applications themselves write."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from streams.errors import StreamsError


class ApplicationError(StreamsError):
    """A real application refused a write (or could not be reached)."""

    stage = "seed"


class _Session:
    """One application session over one httpx client, closed with the `with` block."""

    _http: httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()


class WikiApi(_Session):
    """MediaWiki's action API (api.php) as one user: a cookie session of its own, logged in with
    action=clientlogin, writing with the session's CSRF token."""

    def __init__(self, api_url: str, timeout_s: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = api_url
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self.user: str | None = None

    def _call(self, method: str, **params: str) -> dict[str, Any]:
        query = {**params, "format": "json", "formatversion": "2"}
        try:
            if method == "GET":
                answer = self._http.get(self.api_url, params=query)
            else:
                answer = self._http.post(self.api_url, data=query)
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ApplicationError(f"MediaWiki API {params.get('action')}: {exc}") from exc
        if "error" in body:
            error = body["error"]
            raise ApplicationError(f"MediaWiki API {params.get('action')}: {error.get('code')}: {error.get('info')}")
        return body

    def _token(self, kind: str) -> str:
        tokens = self._call("GET", action="query", meta="tokens", type=kind)["query"]["tokens"]
        return str(tokens[f"{kind}token"])

    def login(self, user: str, password: str) -> None:
        answer = self._call(
            "POST",
            action="clientlogin",
            username=user,
            password=password,
            logintoken=self._token("login"),
            loginreturnurl=self.api_url,
        )["clientlogin"]
        if answer.get("status") != "PASS":
            raise ApplicationError(f"MediaWiki login as {user!r}: {answer.get('status')}: {answer.get('message')}")
        self.user = str(answer["username"])

    def edit(self, title: str, text: str, summary: str = "") -> int:
        """Create or replace a page's text; the new revision's id (the current one when nothing changed)."""
        answer = self._call("POST", action="edit", title=title, text=text, summary=summary, token=self._token("csrf"))[
            "edit"
        ]
        if answer.get("result") != "Success":
            raise ApplicationError(f"MediaWiki edit of {title!r}: {answer}")
        if answer.get("nochange"):
            return int(self.page(title)["revisions"][0]["revid"])
        return int(answer["newrevid"])

    def create_page(self, title: str, text: str, summary: str = "") -> int:
        """Save a page's text (creating the page or replacing its text); the page's id."""
        answer = self._call("POST", action="edit", title=title, text=text, summary=summary, token=self._token("csrf"))[
            "edit"
        ]
        if answer.get("result") != "Success":
            raise ApplicationError(f"MediaWiki edit of {title!r}: {answer}")
        return int(answer["pageid"])

    def delete_page(self, page_id: int, reason: str = "") -> None:
        """Delete a page, as an administrator's Delete does (its revisions go to the archive)."""
        self._call("POST", action="delete", pageid=str(page_id), reason=reason, token=self._token("csrf"))

    def page(self, title: str) -> dict[str, Any]:
        """The page's latest revision: id, user and main-slot text."""
        pages = self._call(
            "GET", action="query", prop="revisions", titles=title, rvprop="ids|user|content", rvslots="main"
        )["query"]["pages"]
        return dict(pages[0])


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes

    def as_rest2(self) -> dict[str, str]:
        return {
            "FileName": self.filename,
            "FileType": self.content_type,
            "FileContent": base64.b64encode(self.content).decode("ascii"),
        }


class RtApi(_Session):
    """Request Tracker's REST 2 API as one RT user (HTTP basic auth with the user's RT password)."""

    def __init__(
        self,
        rest2_url: str,
        user: str,
        password: str,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.rest2_url = rest2_url.rstrip("/")
        self.user = user
        self._http = httpx.Client(
            base_url=self.rest2_url, auth=(user, password), timeout=timeout_s, transport=transport
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            answer = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ApplicationError(f"RT REST 2 {method} {path}: {exc}") from exc
        if answer.status_code >= 400:
            raise ApplicationError(f"RT REST 2 {method} {path} as {self.user!r}: {answer.status_code} {answer.text}")
        try:
            return answer.json()
        except ValueError as exc:
            raise ApplicationError(f"RT REST 2 {method} {path}: not JSON: {answer.text[:200]}") from exc

    def create_user(self, name: str, email: str, real_name: str, password: str, privileged: bool = True) -> str:
        """An RT account (needs an administrator's session); privileged users are staff. REST 2 names a
        user by its name, which it returns."""
        created = self._call(
            "POST",
            "/user",
            {
                "Name": name,
                "EmailAddress": email,
                "RealName": real_name,
                "Password": password,
                "Privileged": 1 if privileged else 0,
            },
        )
        return str(created["id"])

    def user_exists(self, name: str) -> bool:
        try:
            answer = self._http.get(f"/user/{name}")
        except httpx.HTTPError as exc:
            raise ApplicationError(f"RT REST 2 GET /user/{name}: {exc}") from exc
        if answer.status_code == 404:
            return False
        if answer.status_code >= 400:
            raise ApplicationError(f"RT REST 2 GET /user/{name} as {self.user!r}: {answer.status_code} {answer.text}")
        return True

    def create_ticket(
        self,
        queue: str,
        subject: str,
        content: str,
        requestors: Sequence[str],
        cc: Iterable[str] = (),
        owner: str | None = None,
        content_type: str = "text/plain",
        attachments: Iterable[Attachment] = (),
    ) -> int:
        """A new ticket; requestors and Cc are e-mail addresses ("Real Name <a@b>" sets the real name),
        and RT creates the users it does not know."""
        body: dict[str, Any] = {
            "Queue": queue,
            "Subject": subject,
            "Content": content,
            "ContentType": content_type,
            "Requestor": ", ".join(requestors),
        }
        if cc:
            body["Cc"] = ", ".join(cc)
        if owner is not None:
            body["Owner"] = owner
        files = [attachment.as_rest2() for attachment in attachments]
        if files:
            body["Attachments"] = files
        return int(self._call("POST", "/ticket", body)["id"])

    def _message(
        self, kind: str, ticket: int, content: str, content_type: str, attachments: Iterable[Attachment]
    ) -> None:
        body: dict[str, Any] = {"Content": content, "ContentType": content_type}
        files = [attachment.as_rest2() for attachment in attachments]
        if files:
            body["Attachments"] = files
        self._call("POST", f"/ticket/{ticket}/{kind}", body)

    def correspond(
        self, ticket: int, content: str, content_type: str = "text/plain", attachments: Iterable[Attachment] = ()
    ) -> None:
        """A reply, seen by the requestors (RT records the mail it would send)."""
        self._message("correspond", ticket, content, content_type, attachments)

    def comment(
        self, ticket: int, content: str, content_type: str = "text/plain", attachments: Iterable[Attachment] = ()
    ) -> None:
        """An internal comment, for staff only."""
        self._message("comment", ticket, content, content_type, attachments)

    def set_cc(self, ticket: int, cc: Sequence[str]) -> None:
        """Make `cc` (e-mail addresses) the ticket's Cc: REST 2 adds and removes role members to match."""
        self._call("PUT", f"/ticket/{ticket}", {"Cc": list(cc)})

    def merge(self, ticket: int, into: int) -> None:
        """Merge `ticket` into `into`, as RT's Merge action does (REST 2: the MergeInto field of an update)."""
        self._call("PUT", f"/ticket/{ticket}", {"MergeInto": into})

    def set_status(self, ticket: int, status: str) -> None:
        self._call("PUT", f"/ticket/{ticket}", {"Status": status})

    def ticket(self, ticket: int) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/ticket/{ticket}")
        return found

    def create_queue(self, name: str, description: str = "") -> int:
        return int(self._call("POST", "/queue", {"Name": name, "Description": description})["id"])

    def ensure_queue(self, name: str, description: str = "") -> None:
        """The queue `name`, created unless RT has it already."""
        try:
            answer = self._http.get(f"/queue/{name}")
        except httpx.HTTPError as exc:
            raise ApplicationError(f"RT REST 2 GET /queue/{name}: {exc}") from exc
        if answer.status_code == 404:
            self.create_queue(name, description)
        elif answer.status_code >= 400:
            raise ApplicationError(f"RT REST 2 GET /queue/{name} as {self.user!r}: {answer.status_code} {answer.text}")

    def create_group(self, name: str, description: str = "") -> int:
        """A group of the administrators' own (RT's domain UserDefined), to which rights are granted."""
        body = {"Name": name, "Domain": "UserDefined", "Description": description}
        return int(self._call("POST", "/group", body)["id"])


class TrytonApi(_Session):
    """Tryton's JSON-RPC API (trytond's own dispatcher) as one Tryton user: common.db.login for a
    session, then model.<name>.<method> calls with the user's preferences as context."""

    def __init__(
        self, url: str, database: str, timeout_s: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = f"{url.rstrip('/')}/{database}/"
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._ids = 0
        self.user = ""
        self.context: dict[str, Any] = {}

    def call(self, method: str, *params: Any) -> Any:
        self._ids += 1
        try:
            answer = self._http.post(self.url, json={"id": self._ids, "method": method, "params": list(params)})
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ApplicationError(f"Tryton JSON-RPC {method}: {exc}") from exc
        if body.get("error"):
            raise ApplicationError(f"Tryton JSON-RPC {method}: {body['error']}")
        return body.get("result")

    def login(self, user: str, password: str) -> None:
        found = self.call("common.db.login", user, {"password": password}, "en")
        if not found:
            raise ApplicationError(f"Tryton login as {user!r} refused")
        user_id, session = found
        self.user = user
        token = base64.b64encode(f"{user}:{user_id}:{session}".encode()).decode("ascii")
        self._http.headers["Authorization"] = f"Session {token}"
        self.context = dict(self.call("model.res.user.get_preferences", True, {}) or {})

    def model(self, name: str, method: str, *args: Any) -> Any:
        return self.call(f"model.{name}.{method}", *args, self.context)

    def create(self, name: str, values: dict[str, Any]) -> int:
        return int(self.model(name, "create", [values])[0])

    def write(self, name: str, ids: Sequence[int], values: dict[str, Any]) -> None:
        self.model(name, "write", list(ids), values)

    def delete(self, name: str, ids: Sequence[int]) -> None:
        self.model(name, "delete", list(ids))

    def ensure_company(self, name: str, currency_code: str = "EUR") -> int:
        """The company opportunities belong to (created once, with its currency), and the logged-in
        user's current company, as the Tryton client would set it."""
        found = self.model("company.company", "search", [["party.name", "=", name]], 0, 1, None)
        if found:
            company = int(found[0])
        else:
            currencies = self.model("currency.currency", "search", [["code", "=", currency_code]], 0, 1, None)
            currency = (
                int(currencies[0])
                if currencies
                else self.create(
                    "currency.currency", {"name": currency_code, "code": currency_code, "symbol": currency_code}
                )
            )
            party = self.create("party.party", {"name": name})
            company = self.create("company.company", {"party": party, "currency": currency})
        user = self.model("res.user", "search", [["login", "=", self.user]], 0, 1, None)
        self.write("res.user", user, {"companies": [["add", [company]]], "company": company})
        self.context = dict(self.call("model.res.user.get_preferences", True, {}) or {})
        self.context["company"] = company
        return company

    def create_party(self, name: str, contacts: Sequence[tuple[str, str]] = ()) -> int:
        """A party with contact mechanisms, each (type, value): email, phone, mobile ..."""
        mechanisms = [{"type": kind, "value": value} for kind, value in contacts]
        values: dict[str, Any] = {"name": name}
        if mechanisms:
            values["contact_mechanisms"] = [["create", mechanisms]]
        return self.create("party.party", values)

    def create_opportunity(self, party: int, company: int, description: str, comment: str = "") -> int:
        """A sale opportunity (a lead) of `party`."""
        return self.create(
            "sale.opportunity",
            {"party": party, "company": company, "description": description, "comment": comment},
        )

    def create_note(self, resource: str, message: str) -> int:
        """A note on a record, named as Tryton's references are: 'party.party,12', 'sale.opportunity,3'."""
        return self.create("ir.note", {"resource": resource, "message": message})

    def edit_note(self, note: int, message: str) -> None:
        self.write("ir.note", [note], {"message": message})

    def delete_note(self, note: int) -> None:
        self.delete("ir.note", [note])
