"""Generate the synthetic part of the semantic-type training set (``generated.jsonl``).

Deterministic (seeded): ``python -m checks.semantic.data.generate`` rewrites the same file.
Each line is one column: ``{"table", "column", "type", "values", "label", "group", "source"}``,
where ``type`` is a kora type, ``values`` a sample of raw source values as text (as a legacy
source holds them: dates as text in several formats, money with symbols, NULLs), and ``group``
the column's base name: the held-out split is by group, so evaluation sees column names the
head was never trained on.

Written for kora (Apache-2.0); every value is made up here from the word lists below.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import string
from pathlib import Path

OUT = Path(__file__).with_name("generated.jsonl")

FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Susan", "Anna",
         "Peter", "Thomas", "Laura", "Daniel", "Emma", "Paul", "Sarah", "Mark", "Julia", "Kevin", "Lisa", "Brian",
         "Nina", "Oliver", "Sophie", "José", "Zoë", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Günter", "Hiro",
         "Inès", "Jürgen", "Kofi", "Léa", "Mateo", "Noémie", "Olga", "Pál", "Quentin", "Renée", "Søren", "Tomás",
         "Ursula", "Valérie", "Wei", "Xavier", "Yusuf", "Zoltán", "Aisha", "Mohammed", "Priya", "Rahul", "Mei",
         "Yuki", "Kenji", "Ngozi", "Chinedu", "Amara", "Lars", "Ingrid", "Mikko", "Aleksandra", "Piotr", "Ivana",
         "Giulia", "Marco", "Lucía", "Diego", "Camila", "Thiago", "Ana", "Sergei", "Tatiana", "Omar", "Leila",
         "Hannah", "Noah", "Liam", "Ava", "Isabella", "Ethan", "Mia", "Lucas", "Chen", "Ravi", "Sunita", "Kwame"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Anderson",
        "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King", "Wright", "Schmidt", "Fischer",
        "Weber", "Dubois", "Garcia", "Rossi", "Novak", "García", "Müller", "Núñez", "O'Brien", "Kowalski",
        "Løvik", "Nakamura", "Peña", "Schäfer", "Ödegaard", "Silva", "Çelik", "Gómez", "Dvořák", "Lefèvre",
        "Öztürk", "Hernández", "Žižek", "Nguyen", "Tran", "Kim", "Park", "Singh", "Patel", "Sharma", "Okafor",
        "Mensah", "Ivanov", "Petrov", "Andersson", "Nielsen", "Virtanen", "Jansen", "de Vries", "Van der Berg",
        "Bianchi", "Romano", "Fernández", "López", "Pereira", "Costa", "Santos", "Haddad", "Cohen", "Levi",
        "Yamamoto", "Tanaka", "Wang", "Li", "Zhang", "Liu", "MacDonald", "Fitzgerald", "Stewart", "Murphy"]
WORDS = ("the customer called about a late delivery and asked for a refund please check the invoice again "
         "item arrived damaged box was open replaced under warranty follow up next week with the supplier "
         "address changed moved to a new office payment received by bank transfer order split into two "
         "shipments discount applied as agreed with sales manager note from the old system migrated in 2009 "
         "urgent contact before shipping gift wrap requested leave at the front door fragile handle with care "
         "account reviewed no further action required credit limit raised after review").split()
CITIES = ["Berlin", "Paris", "Madrid", "London", "New York", "Chicago", "Toronto", "São Paulo", "Tokyo", "Oslo",
          "Prague", "Vienna", "Lisbon", "Dublin", "Warsaw", "Istanbul", "Mumbai", "Sydney", "Cape Town", "Lagos",
          "Mexico City", "Bogotá", "Seattle", "Boston", "Munich", "Lyon", "Milan", "Zürich", "Stockholm", "Helsinki"]
COUNTRY_NAMES = ["Germany", "France", "Spain", "United Kingdom", "United States", "Canada", "Brazil", "Japan",
                 "Norway", "Czech Republic", "Austria", "Portugal", "Ireland", "Poland", "Turkey", "India",
                 "Australia", "South Africa", "Nigeria", "Mexico", "Colombia", "Italy", "Switzerland", "Sweden"]
ISO2 = ["US", "DE", "FR", "ES", "GB", "JP", "BR", "NO", "PL", "TR", "IT", "MX", "CA", "AU", "IN", "CN", "NL", "BE",
        "CH", "AT", "SE", "DK", "FI", "IE", "PT", "CZ", "GR", "HU", "RO", "ZA", "NG", "KE", "EG", "AR", "CL", "CO",
        "PE", "KR", "SG", "NZ", "IL", "AE", "SA", "RU", "UA", "TH", "VN", "ID", "PH", "MY"]
ISO3 = ["USA", "DEU", "FRA", "ESP", "GBR", "JPN", "BRA", "NOR", "POL", "TUR", "ITA", "MEX", "CAN", "AUS", "IND",
        "CHN", "NLD", "BEL", "CHE", "AUT", "SWE", "DNK", "FIN", "IRL", "PRT", "CZE", "ZAF", "ARG", "KOR", "NZL"]
US_STATES = ["CA", "NY", "TX", "FL", "WA", "IL", "MA", "OR", "NV", "AZ", "UT", "CO", "GA", "NC", "OH", "MI", "PA",
             "NJ", "VA", "MN", "WI", "IN", "MO", "TN"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "CZK", "BRL", "MXN",
              "INR", "CNY", "ZAR", "TRY", "KRW", "SGD", "NZD", "HUF"]
DOMAINS = ["example.com", "gmail.com", "yahoo.co.uk", "outlook.com", "web.de", "acme.io", "uol.com.br",
           "mail.ru", "company.org", "shop.example.net", "posteo.de", "hotmail.fr", "proton.me", "uni-bonn.de"]
STATUSES = [["active", "inactive", "closed"], ["pending", "paid", "shipped", "delivered", "cancelled"],
            ["open", "in_progress", "resolved"], ["A", "I", "X"], ["NEW", "APPROVED", "REJECTED"],
            ["draft", "published", "archived"]]
CATEGORIES = ["electronics", "home", "garden", "toys", "books", "clothing", "sports", "food", "beauty", "office"]
COLORS = ["red", "blue", "green", "black", "white", "silver", "navy", "beige", "orange"]
COMPANIES = ["Acme Corp", "Globex GmbH", "Initech LLC", "Umbrella S.A.", "Stark Industries", "Wayne Enterprises",
             "Hooli Inc.", "Vandelay Imports", "Soylent AG", "Tyrell Corporation", "Cyberdyne Systems", "Wonka Ltd"]
TITLES = ["Sales Manager", "IT Staff", "Accountant", "Engineer", "Director", "Intern", "Support Agent", "CEO"]
PRODUCTS = ["Classic Lamp", "Deluxe Kettle", "Compact Backpack", "Smart Headphones", "Eco Blender", "Pro Chair",
            "Ultra Puzzle", "Mini Drone", "Vintage Mug", "Premium Coffee Beans", "Wireless Mouse", "Desk Organizer"]

TABLES = ["customers", "users", "employees", "orders", "invoices", "payments", "products", "accounts", "patients",
          "members", "transactions", "shipments", "contacts", "suppliers", "leads", "tickets", "subscriptions",
          "students", "clients", "persons", "staff", "order_lines", "sales", "bookings", "policies", "claims",
          "vendors", "tbl_cust", "CUSTMAST", "legacy_users", "crm_contacts", "hr_people", "loans", "ledger"]

# base column names per label (the held-out split is by base name)
NAMES: dict[str, list[str]] = {
    "birth_date": ["birth_date", "dob", "date_of_birth", "birthday", "born", "birthdate", "born_on", "geburtsdatum",
                   "fecha_nacimiento", "date_naissance", "bday", "birth_dt", "dt_birth", "customer_dob", "patient_dob",
                   "birth", "b_date", "data_nascimento", "member_birthdate", "emp_birth_date"],
    "event_timestamp": ["created_at", "updated_at", "order_date", "signup_date", "paid_on", "shipped_at", "hired_on",
                        "last_login", "event_time", "posted_at", "created", "modified", "ts", "timestamp",
                        "invoice_date", "delivery_date", "closed_at", "registered", "start_date", "end_date",
                        "visit_date", "transaction_time", "booked_at", "due_date", "hire_date", "ship_date",
                        "logged_at", "occurred_at", "date_created", "last_modified", "opened_on", "renewal_date"],
    "age": ["age", "customer_age", "age_years", "patient_age", "age_at_signup", "current_age", "edad", "alter",
            "member_age", "age_yrs", "driver_age", "age_in_years", "client_age", "years_old", "emp_age"],
    "money_nonnegative": ["balance", "price", "unit_price", "total", "amount", "credit_limit", "fee", "cost",
                          "salary", "order_total", "amount_paid", "subtotal", "tax_amount", "shipping_cost",
                          "list_price", "invoice_total", "premium", "wage", "revenue", "outstanding_amount",
                          "deposit", "rent", "purchase_price", "net_price", "gross_amount", "fare", "charge",
                          "total_due", "sale_price", "retail_price", "budget"],
    "money_signed": ["adjustment", "net_change", "profit", "pnl", "delta_amount", "variance", "account_balance",
                     "balance_change", "net_income", "gain_loss", "correction_amount", "cash_flow", "margin_amount",
                     "difference", "ledger_amount", "booking_amount", "running_balance", "net_amount",
                     "profit_loss", "acct_bal"],
    "quantity": ["quantity", "qty", "units", "items_count", "stock_on_hand", "num_items", "pieces", "seats",
                 "order_qty", "qty_ordered", "quantity_shipped", "stock", "units_sold", "item_count", "pack_size",
                 "inventory", "qty_on_hand", "number_of_items", "reorder_level", "available_qty", "headcount",
                 "nights", "tickets_sold", "cases"],
    "percentage": ["discount_pct", "tax_rate", "completion_percent", "share_pct", "margin_percent", "vat_rate",
                   "interest_rate", "discount", "percent_complete", "commission_rate", "pct", "progress",
                   "utilization", "success_rate", "discount_percentage", "growth_rate", "occupancy_rate",
                   "abv", "humidity", "score_pct", "battery_level", "churn_rate"],
    "email": ["email", "email_address", "e_mail", "mail", "contact_email", "user_email", "emailaddr", "work_email",
              "billing_email", "notify_email", "correo", "courriel", "email1", "primary_email", "login"],
    "phone": ["phone", "phone_number", "telephone", "mobile", "cell", "fax", "tel", "contact_phone", "home_phone",
              "work_phone", "phone1", "msisdn", "telefono", "mobile_no", "fax_number", "emergency_contact_phone"],
    "postal_code": ["postal_code", "zip", "zipcode", "zip_code", "postcode", "plz", "cep", "postal", "post_code",
                    "billing_zip", "shipping_postcode", "codigo_postal", "code_postal", "zip5", "pin_code"],
    "country_code": ["country_code", "country", "iso_country", "country_iso", "cntry", "nation_code", "ctry_cd",
                     "billing_country", "ship_country", "country_cd", "land", "pais", "country_alpha2",
                     "origin_country", "nationality"],
    "currency_code": ["currency", "currency_code", "ccy", "curr", "iso_currency", "currency_iso", "txn_currency",
                      "moneda", "waehrung", "price_currency", "settlement_ccy", "cur_cd"],
    "url": ["url", "website", "homepage", "link", "web_url", "profile_url", "image_url", "site", "callback_url",
            "product_link", "www", "landing_page", "avatar_url", "source_url"],
    "person_name": ["name", "first_name", "last_name", "full_name", "surname", "given_name", "customer_name",
                    "contact_name", "employee_name", "fname", "lname", "forename", "family_name", "nombre",
                    "apellido", "vorname", "nachname", "patient_name", "display_name", "cardholder_name",
                    "emp_name", "middle_name", "manager_name", "author", "recipient_name", "owner_name"],
    "identifier": ["id", "customer_id", "order_id", "sku", "product_code", "invoice_number", "uuid", "ref",
                   "reference", "external_id", "account_number", "tracking_number", "user_id", "emp_no",
                   "ticket_no", "policy_number", "serial_number", "guid", "legacy_key", "batch_id", "iban",
                   "confirmation_code", "member_no", "part_no", "voucher_code", "isbn", "pk", "row_id"],
    "free_text": ["notes", "comment", "comments", "description", "remarks", "memo", "feedback", "message",
                  "details", "body", "review_text", "internal_note", "summary", "bio", "instructions",
                  "reason", "observations", "delivery_instructions", "long_description", "annotation"],
    "other": ["status", "category", "city", "country_name", "gender", "is_active", "color", "brand", "company",
              "job_title", "state", "region", "type", "priority", "rating", "year", "weight_kg", "version",
              "ip_address", "latitude", "longitude", "temperature", "product_name", "department", "segment",
              "channel", "language", "size", "level", "shipping_method", "payment_method", "flag", "vip",
              "tier", "plan", "source", "duration_minutes", "height_cm", "street", "address", "address_line1",
              "province", "county", "locale", "timezone", "model", "genre", "title", "salutation", "marital_status"],
}


#: what an "other" column holds, by its base name
OTHER_MODE = {
    "status": "status", "category": "category", "city": "city", "country_name": "country_name", "gender": "gender",
    "is_active": "bool", "color": "color", "brand": "company", "company": "company", "job_title": "title",
    "state": "state", "region": "city", "type": "category", "priority": "priority", "rating": "rating",
    "year": "year", "weight_kg": "float", "version": "version", "ip_address": "ip", "latitude": "latlon",
    "longitude": "latlon", "temperature": "temp", "product_name": "product", "department": "department",
    "segment": "segment", "channel": "channel", "language": "lang", "size": "size", "level": "rating",
    "shipping_method": "shipping", "payment_method": "payment", "flag": "bool", "vip": "bool", "tier": "tier",
    "plan": "tier", "source": "channel", "duration_minutes": "int", "height_cm": "float", "street": "address",
    "address": "address", "address_line1": "address", "province": "state", "county": "city", "locale": "locale",
    "timezone": "tz", "model": "product", "genre": "category", "title": "title", "salutation": "salutation",
    "marital_status": "marital",
}
ENUMS = {
    "priority": ["low", "medium", "high", "urgent"], "department": ["Sales", "IT", "HR", "Finance", "Logistics"],
    "segment": ["BUILDING", "AUTOMOBILE", "MACHINERY", "HOUSEHOLD", "FURNITURE"],
    "channel": ["web", "store", "phone", "partner", "email"], "lang": ["en", "de", "fr", "pt-BR", "es", "it"],
    "size": ["S", "M", "L", "XL", "XXL"], "shipping": ["standard", "express", "pickup", "REG AIR", "TRUCK"],
    "payment": ["card", "paypal", "bank_transfer", "invoice", "cash"], "tier": ["gold", "silver", "bronze", "basic", "pro"],
    "locale": ["en_US", "de_DE", "fr_FR", "pt_BR", "es_ES"],
    "tz": ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "America/Sao_Paulo"],
    "salutation": ["Mr", "Ms", "Mrs", "Dr", "Prof"], "marital": ["single", "married", "divorced", "widowed"],
}
MODE_KIND = {"rating": [("integer", 3), ("text", 1)], "year": [("integer", 3), ("text", 1)],
             "float": [("decimal", 3), ("text", 1)], "latlon": [("decimal", 1)], "temp": [("decimal", 1)],
             "int": [("integer", 1)], "bool": [("boolean", 1), ("text", 2)]}


def style(name: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        return name
    if r < 0.70:
        parts = name.split("_")
        return parts[0] + "".join(p.capitalize() for p in parts[1:])
    if r < 0.80:
        return name.upper()
    if r < 0.90:
        return "".join(p.capitalize() for p in name.split("_"))
    return rng.choice(["c_", "cust_", "x_", "src_", "old_", "f_"]) + name


def rdate(rng, y0, y1) -> dt.date:
    a, b = dt.date(y0, 1, 1).toordinal(), dt.date(y1, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(a, b))


def fmt_date(d: dt.date, kind: str, rng, with_time=False) -> str:
    if kind == "date":
        return d.isoformat()
    if kind == "timestamp" or with_time:
        t = dt.datetime.combine(d, dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60)))
        return t.strftime("%Y-%m-%d %H:%M:%S") if kind != "text" or rng.random() < 0.7 else t.isoformat()
    f = rng.choice(["%Y-%m-%d"] * 6 + ["%d.%m.%Y", "%m/%d/%Y", "%Y%m%d", "%d/%m/%Y", "%Y/%m/%d"])
    return d.strftime(f)


def money(rng, lo, hi, kind, neg_frac=0.0) -> str:
    v = rng.uniform(lo, hi) * (rng.choice([1, 1, 1, 0.1, 0.01]))
    if rng.random() < neg_frac:
        v = -v
    if kind == "integer":
        return str(int(round(v)))
    if kind == "text" and rng.random() < 0.15:
        return rng.choice([f"${v:,.2f}", f"{v:.2f} EUR", f"{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", "."), f" {v:.2f} "])
    return f"{v:.2f}"


def gen_values(label: str, kind: str, rng: random.Random, n: int, group: str = "") -> list:
    out = []
    status_set = rng.choice(STATUSES)
    other_mode = OTHER_MODE.get(group, "category")
    id_mode = rng.choice(["seq", "rand", "sku", "uuid", "code", "hex", "iban"])
    base = rng.randrange(1, 100000)
    name_mode = rng.choice(["first", "last", "full", "full", "upper", "lastfirst"])
    phone_mode = rng.choice(["us", "intl", "digits", "de", "dots"])
    zip_mode = rng.choice(["us", "us9", "de", "uk", "ca", "br", "nl"]) if kind == "text" else "int"
    pct_mode = rng.choice(["0_100", "0_100", "frac", "int"])
    neg_share = rng.uniform(0.15, 0.5)
    # legacy columns are dirty: a third of the columns whose type has plausibility rules carry a few
    # values that break them, so the head learns the type from the column, not from its cleanliness
    dirt = rng.uniform(0.02, 0.08) if label in DIRT and rng.random() < 0.35 else 0.0
    for i in range(n):
        if dirt and rng.random() < dirt:
            out.append(DIRT[label](rng, kind))
            continue
        if rng.random() < 0.04:
            out.append(None)
            continue
        if label == "birth_date":
            v = fmt_date(rdate(rng, 1925, 2012), kind, rng)
        elif label == "event_timestamp":
            v = fmt_date(rdate(rng, 1998, 2025), kind, rng, with_time=kind == "timestamp" or rng.random() < 0.3)
        elif label == "age":
            v = str(rng.randint(0, 95) if rng.random() < 0.2 else rng.randint(18, 85))
        elif label == "money_nonnegative":
            v = money(rng, 0, rng.choice([50, 500, 5000, 50000, 500000]), kind)
        elif label == "money_signed":
            v = money(rng, 0, rng.choice([50, 500, 5000, 50000]), kind, neg_frac=neg_share)
        elif label == "quantity":
            v = str(rng.choice([rng.randint(1, 10), rng.randint(0, 50), rng.randint(0, 500)]))
            if kind == "decimal" and rng.random() < 0.5:
                v = v + ".0"
        elif label == "percentage":
            if pct_mode == "frac":
                v = f"{rng.uniform(0, 1):.3f}"
            elif pct_mode == "int":
                v = str(rng.choice([0, 5, 10, 15, 20, 25, 50, 75, 100, rng.randint(0, 100)]))
            else:
                v = f"{rng.uniform(0, 100):.2f}"
            if kind == "text" and rng.random() < 0.1:
                v = v + "%"
        elif label == "email":
            f, last = rng.choice(FIRST), rng.choice(LAST)
            local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}{rng.randint(1, 999)}", f"{last}_{f}", f"{f}"])
            v = (local.lower().replace(" ", "").replace("'", "") + "@" + rng.choice(DOMAINS))
        elif label == "phone":
            d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
            v = {"us": f"+1 ({d(3)}) {d(3)}-{d(4)}", "intl": f"+{rng.randint(2, 99)} {d(2)} {d(4)} {d(4)}",
                 "digits": d(10), "de": f"0{d(3)} {d(7)}", "dots": f"{d(3)}.{d(3)}.{d(4)}"}[phone_mode]
        elif label == "postal_code":
            d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
            L = lambda k: "".join(rng.choice(string.ascii_uppercase) for _ in range(k))  # noqa: E731
            v = {"us": d(5), "us9": f"{d(5)}-{d(4)}", "de": d(5), "uk": f"{L(2)}{d(1)} {d(1)}{L(2)}",
                 "ca": f"{L(1)}{d(1)}{L(1)} {d(1)}{L(1)}{d(1)}", "br": f"{d(5)}-{d(3)}", "nl": f"{d(4)} {L(2)}",
                 "int": str(rng.randint(1000, 99999))}[zip_mode]
        elif label == "country_code":
            v = rng.choice(ISO3) if rng.random() < 0.15 else rng.choice(ISO2)
            if rng.random() < 0.05:
                v = v.lower()
        elif label == "currency_code":
            v = rng.choice(CURRENCIES)
        elif label == "url":
            v = rng.choice(["https://", "http://", "https://www."]) + rng.choice(
                ["example.com", "shop.acme.io", "news.site.org", "cdn.images.net", "my-blog.de"]) + rng.choice(
                ["", "/", f"/p/{rng.randint(1, 9999)}", "/about", f"/img/{rng.randint(1, 999)}.png", "/index.html?id=3"])
        elif label == "person_name":
            f, last = rng.choice(FIRST), rng.choice(LAST)
            v = {"first": f, "last": last, "full": f"{f} {last}", "upper": f"{f} {last}".upper(),
                 "lastfirst": f"{last}, {f}"}[name_mode]
        elif label == "identifier":
            if kind == "integer":
                v = str(base + i if id_mode == "seq" else rng.randint(1, 10**rng.choice([4, 6, 9])))
            else:
                v = {"seq": str(base + i), "rand": str(rng.randint(10**5, 10**9)),
                     "sku": f"{rng.choice(['SKU', 'P', 'INV', 'ORD', 'AB'])}-{rng.randint(0, 99999):05d}",
                     "uuid": "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                             rng.getrandbits(16), rng.getrandbits(48)),
                     "code": "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
                     "hex": "%016x" % rng.getrandbits(64),
                     "iban": f"DE{rng.randint(10, 99)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}"}[id_mode]
        elif label == "free_text":
            k = rng.randint(4, 18)
            s = " ".join(rng.choice(WORDS) for _ in range(k))
            v = s[0].upper() + s[1:] + rng.choice([".", "", "!", "."])
        else:  # other
            m = other_mode
            v = {
                "status": lambda: rng.choice(status_set), "category": lambda: rng.choice(CATEGORIES),
                "city": lambda: rng.choice(CITIES), "country_name": lambda: rng.choice(COUNTRY_NAMES),
                "gender": lambda: rng.choice(["M", "F", "male", "female", "X"][:rng.choice([2, 4, 5])]),
                "bool": lambda: rng.choice(["Y", "N", "yes", "no", "0", "1"][:2 + 2 * (i % 2)]) if kind == "text" else rng.choice(["true", "false"]),
                "color": lambda: rng.choice(COLORS), "company": lambda: rng.choice(COMPANIES),
                "title": lambda: rng.choice(TITLES), "state": lambda: rng.choice(US_STATES),
                "rating": lambda: str(rng.randint(1, 5)), "year": lambda: str(rng.randint(1990, 2025)),
                "float": lambda: f"{rng.uniform(0.1, 300):.1f}", "version": lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                "ip": lambda: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
                "latlon": lambda: f"{rng.uniform(-90, 90):.5f}", "temp": lambda: f"{rng.uniform(-20, 40):.1f}",
                "product": lambda: rng.choice(PRODUCTS), "date": lambda: fmt_date(rdate(rng, 1990, 2025), kind, rng),
                "address": lambda: f"{rng.randint(1, 999)} {rng.choice(['Main St', 'Elm Street', 'Rue Bélanger', 'Hauptstraße', 'Av. Paulista'])}",
                "int": lambda: str(rng.randint(0, 600)),
                **{k: (lambda vals=vals: rng.choice(vals)) for k, vals in ENUMS.items()},
            }[m]()
        out.append(v)
    return out


def _dirty_date(rng, kind):
    d = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(30, 20000))
    return d.isoformat() if kind != "timestamp" else d.isoformat() + " 00:00:00"


DIRT = {  # an implausible value per type (what the plausibility rules catch)
    "birth_date": _dirty_date,
    "age": lambda rng, kind: str(rng.randint(131, 999)),
    "money_nonnegative": lambda rng, kind: f"-{rng.uniform(0.01, 5000):.2f}" if kind != "integer" else str(-rng.randint(1, 5000)),
    "quantity": lambda rng, kind: str(-rng.randint(1, 50)),
    "percentage": lambda rng, kind: f"{rng.uniform(100.5, 900):.2f}" if kind != "integer" else str(rng.randint(101, 900)),
    "email": lambda rng, kind: rng.choice(["n/a", "none", "test@", "john.smith", "x@y", "mail at example.com"]),
    "person_name": lambda rng, kind: rng.choice(["test", "N/A", "asdf", "xxx", "unknown", "John Doe", "12345"]),
    "country_code": lambda rng, kind: rng.choice(["XX", "UK", "EU", "??", "ZZ"]),
    "currency_code": lambda rng, kind: rng.choice(["ABC", "XXX", "US$", "EURO"]),
    "phone": lambda rng, kind: rng.choice(["0000000000", "n/a", "123", "call me"]),
}


KINDS_FOR = {
    "birth_date": [("date", 6), ("text", 3), ("timestamp", 1)],
    "event_timestamp": [("timestamp", 5), ("date", 3), ("text", 2)],
    "age": [("integer", 6), ("text", 2), ("decimal", 1)],
    "money_nonnegative": [("decimal", 6), ("text", 3), ("integer", 1)],
    "money_signed": [("decimal", 6), ("text", 3), ("integer", 1)],
    "quantity": [("integer", 7), ("text", 2), ("decimal", 1)],
    "percentage": [("decimal", 6), ("text", 2), ("integer", 2)],
    "email": [("text", 1)], "phone": [("text", 1)], "postal_code": [("text", 5), ("integer", 1)],
    "country_code": [("text", 1)], "currency_code": [("text", 1)], "url": [("text", 1)],
    "person_name": [("text", 1)], "identifier": [("integer", 5), ("text", 5)], "free_text": [("text", 1)],
    "other": [("text", 6), ("integer", 2), ("decimal", 2), ("boolean", 1)],
}


def kora_type(kind: str, label: str, rng) -> str:
    if kind == "integer":
        return rng.choice(["integer", "integer", "bigint", "smallint"]) if label != "identifier" else rng.choice(["integer", "bigint"])
    if kind == "decimal":
        return rng.choice(['numeric(12,2)', 'numeric(10,2)', "double", 'numeric(5,2)' if label == "percentage" else "numeric(14,4)", "real"])
    if kind == "text":
        if label in ("country_code",):
            return rng.choice(["char(2)", "varchar(3)", "text"])
        if label == "currency_code":
            return rng.choice(["char(3)", "varchar(3)", "text"])
        return rng.choice(["text", "varchar(80)", "varchar(255)", "varchar(40)", "varchar(120)"])
    return kind


def main(seed: int = 20260101, per_name: int = 5) -> None:
    rng = random.Random(seed)
    rows = []
    for label, names in NAMES.items():
        kinds = KINDS_FOR[label]
        for base in names:
            for _ in range(per_name):
                if label == "other":
                    kinds = MODE_KIND.get(OTHER_MODE.get(base, ""), [("text", 1)])
                kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
                rows.append({"table": style(rng.choice(TABLES), rng), "column": style(base, rng),
                             "type": kora_type(kind, label, rng), "values": gen_values(label, kind, rng, 16, base),
                             "label": label, "group": base, "source": "generated"})
    rng.shuffle(rows)
    with OUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(rows)} columns")


if __name__ == "__main__":
    main()
