"""Realistic hotspot traffic: guests at simulated locations, as events of the six built-in types.

``simulate`` and ``bench/`` need load that looks like a real platform's (guests who register,
subscribe to the newsletter and come back to buy access; prices that belong to their currency;
names, addresses and phones of the guest's own country), and that repeats exactly for a seed,
so that a test or a benchmark run compares with the next. Every payload is one the catalog
accepts. Pure apart from Faker: no clock, no I/O; the caller says when an event happens.

Choices a receiver can rely on:

* ``UserName`` / ``user_name`` is the guest device's MAC address (``BE-72-B3-40-F9-BE``), the
  same every time that guest comes back;
* a voucher guest is known by the code they typed, so a voucher transaction's ``customer``
  holds the voucher code (``7KQ2-M9XD``); other transactions name the guest when registered;
* ``amount`` is the price of one of the location's access packages in its ``currency``
  (``PRICES``); a complimentary voucher is ``"0.00"``;
* a field the location's form does not collect is null, as the catalog says.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from faker import Faker

from .catalog import EVENT_TYPES
from .validation import invalid

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# The access packages a location sells, cheapest first, per currency.
PRICES: dict[str, tuple[str, ...]] = {
    "ARS": ("1500.00", "3500.00", "12000.00"),
    "BRL": ("9.90", "19.90", "49.90"),
    "EUR": ("2.00", "5.00", "15.00"),
    "GBP": ("1.99", "3.99", "9.99"),
    "HUF": ("990.00", "1990.00", "4990.00"),
    "USD": ("2.99", "4.99", "14.99"),
}


@dataclass(frozen=True)
class Country:
    """Where a location stands or a guest comes from: their Faker locale, language, money,
    phone numbers and (standard) time."""

    code: str
    locale: str
    language: str
    currency: str
    calling_code: str
    national_digits: int
    utc_offset: int  # hours


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country("AR", "es_AR", "es", "ARS", "54", 10, -3),
        Country("BR", "pt_BR", "pt", "BRL", "55", 11, -3),
        Country("DE", "de_DE", "de", "EUR", "49", 11, 1),
        Country("ES", "es_ES", "es", "EUR", "34", 9, 1),
        Country("FR", "fr_FR", "fr", "EUR", "33", 9, 1),
        Country("GB", "en_GB", "en", "GBP", "44", 10, 0),
        Country("HU", "hu_HU", "hu", "HUF", "36", 9, 1),
        Country("US", "en_US", "en", "USD", "1", 10, -5),
    )
}

# How often each type happens at a hotspot: most guests just log in (MAC, social, voucher,
# paid); fewer register, fewer still subscribe to the newsletter.
DEFAULT_WEIGHTS: dict[str, float] = {
    "customer.create": 0.18,
    "subscriber.create": 0.07,
    "transaction.paid.create": 0.20,
    "transaction.voucher.create": 0.15,
    "transaction.mac.create": 0.25,
    "transaction.social.create": 0.15,
}

# Guests per hour of the location's day, relative to the busiest hours.
_ACTIVITY = (0.15, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 1.0,
             1.0, 1.0, 0.9, 0.9, 0.9, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3)  # fmt: skip

_USER_AGENTS = (
    (0.30, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
    (0.25, "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Mobile Safari/537.36"),
    (0.12, "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/123.0.0.0 Mobile Safari/537.36"),
    (0.08, "Mozilla/5.0 (iPad; CPU OS 17_3 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1"),
    (0.10, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"),
    (0.10, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    (0.05, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
)  # fmt: skip

_AGENTS = [agent for _, agent in _USER_AGENTS]
_AGENT_WEIGHTS = [weight for weight, _ in _USER_AGENTS]

# Vendors' prefixes for devices that show their real address; most phones now use a random,
# locally administered one.
_OUIS = ("3C-22-FB", "F0-18-98", "8C-F5-A3", "DC-A6-32", "A4-83-E7", "00-1A-11")

_QUESTIONS = (
    ("How did you hear about us?", ("A friend", "Social media", "Passing by", "Search engine")),
    ("What brings you here today?", ("Business", "Leisure", "Meeting friends", "Conference")),
    ("How often do you visit?", ("First time", "Weekly", "Monthly", "Rarely")),
    ("How would you rate our Wi-Fi?", ("1", "2", "3", "4", "5")),
    ("Would you recommend us to a friend?", ("Yes", "No", "Maybe")),
    ("Which age group are you in?", ("18-24", "25-34", "35-44", "45-54", "55+")),
)

_NETWORKS = {"facebook": 0.45, "google": 0.20, "instagram": 0.15, "twitter": 0.10,
             "linkedin": 0.10}  # fmt: skip
AGE_RANGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_VOUCHER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: typed from paper
# What a location's login form asks, and how many locations ask it.
_FORM_FIELDS = (("name", 0.7), ("email", 0.95), ("phone", 0.55), ("address", 0.25),
                ("company", 0.15))  # fmt: skip
_MAX_GUESTS = 2000  # remembered per location: the newest stay, memory stays bounded


@dataclass(frozen=True)
class SocialProfile:
    """What a social login hands over about the guest."""

    network: str
    id: str
    username: str
    link: str | None
    gender: str | None
    age_range: str | None
    followers: str | None


@dataclass(eq=False)  # a guest is a person: two with the same details are still two
class Guest:
    """A person with a device, who may register, subscribe and come back."""

    mac: str
    country: Country
    name: str
    email: str
    phone: str
    address: str
    city: str
    state: str
    zip: str
    company: str | None
    user_agent: str
    language: str
    gender: str
    social: SocialProfile | None
    customer_id: str | None = None  # set when the guest registers
    subscribed: bool = False


@dataclass(frozen=True)
class SimulatedLocation:
    """One hotspot: its country, how busy it is, what its login form asks, what it sells."""

    id: str
    country: Country
    popularity: float
    collects: frozenset[str]  # of name, email, phone, address, company
    sms_verification: bool
    prices: tuple[str, ...]
    free_packages: tuple[str, ...]
    questions: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class SimulatedEvent:
    """One event to emit: its id (unique), type, location and catalog payload."""

    id: str
    type: str
    location_id: str
    data: dict[str, str | None]
    at: datetime
    mac: str  # the guest's device, to follow a guest across events

    def as_request(self) -> dict[str, object]:
        """The event as ``POST /v1/events`` (and each of ``/batch``) takes it."""
        return {"id": self.id, "type": self.type, "location_id": self.location_id,
                "data": self.data}  # fmt: skip


def weights_for(types: Mapping[str, float] | Iterable[str] | None) -> dict[str, float]:
    """The type mix: the default weights, those of some types only, or weights given."""
    if types is None:
        return dict(DEFAULT_WEIGHTS)
    given = (
        dict(types) if isinstance(types, Mapping) else {t: DEFAULT_WEIGHTS.get(t, 0) for t in types}
    )
    if not given:
        raise invalid("types", "names no event type", headline="types is empty: name a type")
    for name, weight in given.items():
        if name not in DEFAULT_WEIGHTS:
            known = ", ".join(DEFAULT_WEIGHTS)
            raise invalid(
                "types",
                f"unknown event type {name!r}",
                headline=f"types: unknown event type {name!r}; the simulator makes {known}",
            )
        if not weight > 0:
            raise invalid("types", f"weight of {name} must be above 0, not {weight}")
    return given


class Traffic:
    """An endless, seeded stream of events at ``locations``.

    ``types`` picks the mix (names, or names with weights); ``returning`` is how often a
    transaction is by a guest the location has seen before; ``run`` prefixes the event ids
    (default: from the seed, so a seed gives the same ids too). Without ``at``, events are
    dated by a simulated clock from ``start``: ``pace`` seconds apart on average at the busiest
    hours, further apart at night at the locations.
    """

    def __init__(
        self,
        locations: Sequence[str],
        *,
        seed: int | None = None,
        types: Mapping[str, float] | Iterable[str] | None = None,
        operator: str = "hotspotsystem-demo",
        run: str | None = None,
        returning: float = 0.6,
        start: datetime | None = None,
        pace: float = 1.0,
    ) -> None:
        if not locations:
            raise invalid("locations", "is empty", headline="traffic needs at least a location")
        if not 0 <= returning <= 1:
            raise invalid("returning", f"must be between 0 and 1, not {returning}")
        if not pace > 0:
            raise invalid("pace", f"must be above 0 seconds, not {pace}")
        self._rng = random.Random(seed if seed is not None else random.SystemRandom().random())
        weights = weights_for(types)
        self._types = list(weights)
        self._type_weights = list(weights.values())
        self.operator = operator
        self.run = run if run is not None else f"sim-{self._rng.getrandbits(32):08x}"
        self._returning = returning
        self._clock = start if start is not None else datetime(2026, 3, 2, 12, tzinfo=UTC)
        self._pace = pace
        self._count = 0
        self._customer_ids = self._rng.randint(10_000_000, 60_000_000)
        self._transaction_ids = self._rng.randint(5_000_000, 9_000_000)
        self._faker_seeds = {c.locale: self._rng.getrandbits(64) for c in COUNTRIES.values()}
        self._fakers: dict[str, Faker] = {}
        self._macs: set[str] = set()
        self._package_ids = self._rng.randint(100, 900)
        self.locations = tuple(self._location(location_id) for location_id in locations)
        self._guests: dict[str, list[Guest]] = {loc.id: [] for loc in self.locations}
        self._popularity = sum(loc.popularity for loc in self.locations)

    # the stream

    def __iter__(self) -> Iterator[SimulatedEvent]:
        while True:
            yield self.event()

    def events(self, count: int) -> list[SimulatedEvent]:
        return [self.event() for _ in range(count)]

    def event(self, at: datetime | None = None) -> SimulatedEvent:
        """The next event, happening ``at`` (an aware time) or at the simulated clock's next
        tick. Busy locations (and those in their daytime at that moment) get more of them."""
        rng = self._rng
        if at is None:
            while True:  # arrivals thinned by the hour: quiet nights, busy days
                self._clock += timedelta(seconds=rng.expovariate(1 / self._pace))
                weights = self._activity(self._clock)
                if rng.random() * self._popularity < sum(weights):
                    break
            at = self._clock
        else:
            at = at.astimezone(UTC)
            weights = self._activity(at)
        location = rng.choices(self.locations, weights)[0]
        kind = rng.choices(self._types, self._type_weights)[0]
        guest = self._guest_for(kind, location)
        data = self._payload(kind, location, guest, at.strftime(DATE_FORMAT))
        self._count += 1
        event_id = f"{self.run}-{self._count:07d}"
        fields = EVENT_TYPES[kind].fields
        return SimulatedEvent(
            event_id, kind, location.id, {name: data.get(name) for name in fields}, at, guest.mac
        )

    def _activity(self, at: datetime) -> list[float]:
        """How busy each location is at ``at``: its popularity by the hour of its own day."""
        return [
            loc.popularity * _ACTIVITY[(at.hour + loc.country.utc_offset) % 24]
            for loc in self.locations
        ]

    # who does it

    def _guest_for(self, kind: str, location: SimulatedLocation) -> Guest:
        guests = self._guests[location.id]
        rng = self._rng
        if kind == "customer.create":
            unregistered = [g for g in guests[-50:] if g.customer_id is None]
            guest = (
                rng.choice(unregistered)
                if unregistered and rng.random() < 0.3
                else self._new_guest(location)
            )
            guest.customer_id = self._next_customer_id()
        elif kind == "subscriber.create":
            candidates = [g for g in guests[-200:] if g.customer_id and not g.subscribed]
            if candidates and rng.random() < 0.7:
                guest = rng.choice(candidates)
            else:  # registers and subscribes in one go
                guest = self._new_guest(location)
                guest.customer_id = self._next_customer_id()
            guest.subscribed = True
        elif guests and rng.random() < self._returning:
            guest = rng.choice(guests)
        else:
            guest = self._new_guest(location)
        return guest

    def _next_customer_id(self) -> str:
        self._customer_ids += self._rng.randint(1, 4)  # other locations register too
        return str(self._customer_ids)

    def _next_transaction_id(self) -> str:
        self._transaction_ids += self._rng.randint(1, 6)
        return str(self._transaction_ids)

    def _faker(self, country: Country) -> Faker:
        fake = self._fakers.get(country.locale)
        if fake is None:
            fake = self._fakers[country.locale] = Faker(country.locale)
            fake.seed_instance(self._faker_seeds[country.locale])
        return fake

    def _new_guest(self, location: SimulatedLocation) -> Guest:
        rng = self._rng
        country = location.country
        if rng.random() < 0.15:  # a visitor from abroad
            country = COUNTRIES[rng.choice(sorted(COUNTRIES))]
        fake = self._faker(country)
        gender = rng.choice(("female", "male"))
        first = fake.first_name_female() if gender == "female" else fake.first_name_male()
        last = fake.last_name()
        handle = f"{_ascii(first)}.{_ascii(last)}"
        digits = str(rng.randint(1, 99)) if rng.random() < 0.4 else ""
        national = str(rng.randint(1, 9)) + "".join(
            str(rng.randint(0, 9)) for _ in range(country.national_digits - 1)
        )
        guest = Guest(
            mac=self._new_mac(),
            country=country,
            name=f"{first} {last}",
            email=f"{handle}{digits}@{fake.free_email_domain()}",
            phone=f"+{country.calling_code}{national}",
            address=", ".join(line.strip() for line in fake.street_address().splitlines()),
            city=fake.city(),
            state=fake.administrative_unit(),
            zip=fake.postcode(),
            company=fake.company() if rng.random() < 0.12 else None,
            user_agent=rng.choices(_AGENTS, _AGENT_WEIGHTS)[0],
            language=country.language if rng.random() < 0.9 else "en",
            gender=gender,
            social=self._social(handle, gender) if rng.random() < 0.5 else None,
        )
        guests = self._guests[location.id]
        if len(guests) >= _MAX_GUESTS:
            guests.pop(rng.randrange(len(guests) // 2))  # forget an old one
        guests.append(guest)
        return guest

    def _new_mac(self) -> str:
        rng = self._rng
        while True:
            if rng.random() < 0.7:  # randomized: locally administered, unicast
                first = (rng.randrange(256) | 0x02) & 0xFE
                octets = [f"{first:02X}"] + [f"{rng.randrange(256):02X}" for _ in range(5)]
            else:
                octets = rng.choice(_OUIS).split("-") + [
                    f"{rng.randrange(256):02X}" for _ in range(3)
                ]
            mac = "-".join(octets)
            if mac not in self._macs:
                self._macs.add(mac)
                return mac

    def _social(self, handle: str, gender: str) -> SocialProfile:
        rng = self._rng
        network = rng.choices(list(_NETWORKS), list(_NETWORKS.values()))[0]
        username = handle
        if rng.random() < 0.4:  # the plain handle was taken
            username = f"{handle.replace('.', '_')}{rng.randint(1, 999)}"
        digits = {"facebook": 15, "google": 21, "instagram": 11, "twitter": 18, "linkedin": 9}
        social_id = str(rng.randint(1, 9)) + "".join(
            str(rng.randint(0, 9)) for _ in range(digits[network] - 1)
        )
        links = {
            "facebook": f"https://www.facebook.com/{username}",
            "instagram": f"https://www.instagram.com/{username}/",
            "twitter": f"https://twitter.com/{username}",
            "linkedin": f"https://www.linkedin.com/in/{username.replace('.', '-')}",
        }
        gives_gender = network in ("facebook", "google") and rng.random() < 0.8
        followers = None if network == "google" else str(int(rng.lognormvariate(5.5, 1.3)))
        return SocialProfile(
            network=network,
            id=social_id,
            username=username,
            link=links.get(network),
            gender=gender if gives_gender else None,
            age_range=rng.choices(AGE_RANGES, (20, 32, 22, 13, 8, 5))[0]
            if network == "facebook"
            else None,
            followers=followers,
        )

    # where it happens

    def _location(self, location_id: str) -> SimulatedLocation:
        rng = self._rng
        country = COUNTRIES[rng.choice(sorted(COUNTRIES))]
        collects = {name for name, chance in _FORM_FIELDS if rng.random() < chance}
        prices = PRICES[country.currency]
        sold = tuple(p for p in prices if rng.random() < 0.8) or prices[:1]
        free = tuple(str(self._package_ids + n) for n in range(rng.randint(1, 3)))
        self._package_ids += 10
        return SimulatedLocation(
            id=location_id,
            country=country,
            popularity=rng.uniform(0.3, 1.0),
            collects=frozenset(collects),
            sms_verification=rng.random() < 0.3,
            prices=sold,
            free_packages=free,
            questions=tuple(rng.sample(_QUESTIONS, rng.randint(1, 5))),
        )

    # what the receiver gets

    def _payload(
        self, kind: str, location: SimulatedLocation, guest: Guest, when: str
    ) -> dict[str, str | None]:
        rng = self._rng
        asks = location.collects
        phone = guest.phone if rng.random() < 0.9 else f"+{guest.country.calling_code}"
        contact: dict[str, str | None] = {
            "email": guest.email if "email" in asks else None,
            "company_name": guest.company if "company" in asks else None,
            "address": guest.address if "address" in asks else None,
            "city": guest.city if "address" in asks else None,
            "state": guest.state if "address" in asks else None,
            "zip": guest.zip if "address" in asks else None,
            "country_code": guest.country.code,
            "phone": phone if "phone" in asks else None,
        }
        if kind in ("customer.create", "subscriber.create"):
            facebook = guest.social if guest.social and guest.social.network == "facebook" else None
            return {
                **contact,
                "id": guest.customer_id,
                "UserName": guest.mac,
                "name": guest.name if "name" in asks else None,
                "email": guest.email,  # the one thing every registration asks for
                "fb_id": facebook.id if facebook else None,
                "fb_username": facebook.username if facebook else None,
                "fb_link": facebook.link if facebook else None,
                "fb_gender": facebook.gender if facebook else None,
                "registered_at": when,
            }
        known = guest.customer_id is not None
        # a guest who never registered gave the location nothing but a payment's billing details
        billed = known or kind == "transaction.paid.create"
        common: dict[str, str | None] = {
            **(contact if billed else {"country_code": guest.country.code}),
            "id": self._next_transaction_id(),
            "operator": self.operator,
            "location_id": location.id,
            "user_name": guest.mac,
            "customer": guest.name if known and "name" in asks else None,
            "action_date_gmt": when,
            "user_agent": guest.user_agent,
            "newsletter": "1" if guest.subscribed else "0",
        }
        if kind in ("transaction.paid.create", "transaction.voucher.create"):
            amount = rng.choice(location.prices)
            if kind == "transaction.voucher.create":
                common["customer"] = _voucher_code(rng)
                if rng.random() < 0.3:
                    amount = "0.00"  # a complimentary voucher from the front desk
            return {
                **common,
                "amount": amount,
                "currency": location.country.currency,
                "language": guest.language,
                "smscountry": guest.country.code if location.sms_verification else None,
            }
        common["package_id"] = rng.choice(location.free_packages)
        if kind == "transaction.mac.create":
            for n, (question, answers) in enumerate(location.questions, 1):
                common[f"q{n}"] = question
                common[f"a{n}"] = rng.choice(answers) if rng.random() < 0.9 else None
            return common
        social = guest.social or self._social(_ascii(guest.name.replace(" ", ".")), guest.gender)
        guest.social = social  # a social login shows the same profile next time
        return {
            **common,
            "social_id": social.id,
            "social_username": social.username,
            "social_link": social.link,
            "social_gender": social.gender,
            "social_age_range": social.age_range,
            "social_followers_count": social.followers,
            "social_network": social.network,
        }


def _voucher_code(rng: random.Random) -> str:
    letters = "".join(rng.choice(_VOUCHER_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def _ascii(text: str) -> str:
    """``"Zoltán Jakab"`` → ``"zoltanjakab"``: a name as it goes into an address or handle."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    kept = "".join(c for c in folded if c.isalnum() or c == ".")
    return kept.strip(".") or "guest"


__all__ = [
    "COUNTRIES",
    "DEFAULT_WEIGHTS",
    "PRICES",
    "Country",
    "Guest",
    "SimulatedEvent",
    "SimulatedLocation",
    "SocialProfile",
    "Traffic",
    "weights_for",
]
