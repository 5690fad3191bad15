"""Reference code lists for plausibility rules (ISO 3166-1 countries, ISO 4217 currencies).

Kept as plain data (no dependency). Country codes: the 249 officially assigned alpha-2 codes
and their alpha-3 forms, plus Kosovo's widely used user-assigned XK/XKX. Currency codes: the
active ISO 4217 list plus withdrawn codes a legacy database may still hold legitimately (the
pre-euro currencies, redenominated ones): a 1998 invoice in DEM is plausible.
"""
from __future__ import annotations

_ISO3166 = """
AD AND AE ARE AF AFG AG ATG AI AIA AL ALB AM ARM AO AGO AQ ATA AR ARG AS ASM AT AUT AU AUS AW ABW AX ALA AZ AZE
BA BIH BB BRB BD BGD BE BEL BF BFA BG BGR BH BHR BI BDI BJ BEN BL BLM BM BMU BN BRN BO BOL BQ BES BR BRA BS BHS
BT BTN BV BVT BW BWA BY BLR BZ BLZ CA CAN CC CCK CD COD CF CAF CG COG CH CHE CI CIV CK COK CL CHL CM CMR CN CHN
CO COL CR CRI CU CUB CV CPV CW CUW CX CXR CY CYP CZ CZE DE DEU DJ DJI DK DNK DM DMA DO DOM DZ DZA EC ECU EE EST
EG EGY EH ESH ER ERI ES ESP ET ETH FI FIN FJ FJI FK FLK FM FSM FO FRO FR FRA GA GAB GB GBR GD GRD GE GEO GF GUF
GG GGY GH GHA GI GIB GL GRL GM GMB GN GIN GP GLP GQ GNQ GR GRC GS SGS GT GTM GU GUM GW GNB GY GUY HK HKG HM HMD
HN HND HR HRV HT HTI HU HUN ID IDN IE IRL IL ISR IM IMN IN IND IO IOT IQ IRQ IR IRN IS ISL IT ITA JE JEY JM JAM
JO JOR JP JPN KE KEN KG KGZ KH KHM KI KIR KM COM KN KNA KP PRK KR KOR KW KWT KY CYM KZ KAZ LA LAO LB LBN LC LCA
LI LIE LK LKA LR LBR LS LSO LT LTU LU LUX LV LVA LY LBY MA MAR MC MCO MD MDA ME MNE MF MAF MG MDG MH MHL MK MKD
ML MLI MM MMR MN MNG MO MAC MP MNP MQ MTQ MR MRT MS MSR MT MLT MU MUS MV MDV MW MWI MX MEX MY MYS MZ MOZ NA NAM
NC NCL NE NER NF NFK NG NGA NI NIC NL NLD NO NOR NP NPL NR NRU NU NIU NZ NZL OM OMN PA PAN PE PER PF PYF PG PNG
PH PHL PK PAK PL POL PM SPM PN PCN PR PRI PS PSE PT PRT PW PLW PY PRY QA QAT RE REU RO ROU RS SRB RU RUS RW RWA
SA SAU SB SLB SC SYC SD SDN SE SWE SG SGP SH SHN SI SVN SJ SJM SK SVK SL SLE SM SMR SN SEN SO SOM SR SUR SS SSD
ST STP SV SLV SX SXM SY SYR SZ SWZ TC TCA TD TCD TF ATF TG TGO TH THA TJ TJK TK TKL TL TLS TM TKM TN TUN TO TON
TR TUR TT TTO TV TUV TW TWN TZ TZA UA UKR UG UGA UM UMI US USA UY URY UZ UZB VA VAT VC VCT VE VEN VG VGB VI VIR
VN VNM VU VUT WF WLF WS WSM YE YEM YT MYT ZA ZAF ZM ZMB ZW ZWE
XK XKX
""".split()

COUNTRY_ALPHA2 = frozenset(_ISO3166[0::2])
COUNTRY_ALPHA3 = frozenset(_ISO3166[1::2])
COUNTRY_CODES = COUNTRY_ALPHA2 | COUNTRY_ALPHA3

CURRENCY_ACTIVE = frozenset("""
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE
CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD
LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF
XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
""".split())
CURRENCY_WITHDRAWN = frozenset("""
ANG ATS BEF BYR CYP DEM EEK ESP FIM FRF GRD HRK IEP ITL LTL LUF LVL MRO MTL NLG PTE RUR SIT SKK SLL STD TRL VEB
VEF ZMK ZWD ZWL
""".split())
CURRENCY_CODES = CURRENCY_ACTIVE | CURRENCY_WITHDRAWN

#: Values that stand in for a person's name in test data and forms left half-filled. Matched
#: whole, case-insensitively, after trimming; deliberately short: real surnames like "Test"
#: exist, but a whole name of "test" in a customer table is what a steward wants to see.
NAME_PLACEHOLDERS = frozenset("""
test|testing|tester|test user|testuser|test test|test1|test2|test123|testname|test name|test customer|test kunde|testkunde
asdf|asdfg|asdfgh|asdfghjkl|qwerty|qwertz|qwe|asd|sdf|sdfsdf|asdasd|asd asd|jkl|hjkl|fdsa|zxcv|zxcvbn|aaa|aaaa|aaaaa
bbb|xxx|xxxx|xxxxx|xx|x|xyz|zzz|zzzz|abc|abcd|abcdef|n/a|na|n.a.|none|null|nil|unknown|unk|not known|no name|noname
name|first name|last name|firstname|lastname|full name|fname|lname|customer|client|user|admin|administrator|dummy
dummy user|sample|example|foo|bar|foo bar|foobar|baz|lorem|lorem ipsum|ipsum|john doe|jane doe|john smith test
mickey mouse|donald duck|max mustermann|erika mustermann|jan kowalski test|mr x|mr. x|ms x|nobody|anonymous|anon
tbd|tba|todo|to do|delete|delete me|do not use|dont use|don't use|invalid|blank|empty|?|??|???|-|--|---|.|..|...
""".replace("\n", "|").split("|")) - {""}
