"""Catalogues as data: channels, drivers, standards, KPIs, entities, services, calendar.

``load_catalogues()`` reads ``catalogues/`` (or ``$PCM_CATALOGUE_DIR``), validates every file
and the references between them, and returns a frozen ``Catalogues``; any problem is one
``CatalogueError`` whose text names the file, line and field.
"""

from .calendar import BusinessCalendar
from .catalogue import Catalogues, ComplaintDue
from .errors import CatalogueError
from .loader import ENV_VAR, default_directory, load_catalogues
from .models import (
    Channel,
    ChannelLevel,
    ComplaintTerm,
    Criterion,
    Direction,
    Domain,
    Driver,
    Entity,
    GovernmentLevel,
    Grain,
    Indicator,
    Kpi,
    LikertScale,
    Measure,
    NonWorkingDay,
    PeerGroup,
    Region,
    Service,
    ServiceKind,
    Standard,
    Unit,
)

__all__ = [
    "ENV_VAR",
    "BusinessCalendar",
    "CatalogueError",
    "Catalogues",
    "Channel",
    "ChannelLevel",
    "ComplaintDue",
    "ComplaintTerm",
    "Criterion",
    "Direction",
    "Domain",
    "Driver",
    "Entity",
    "GovernmentLevel",
    "Grain",
    "Indicator",
    "Kpi",
    "LikertScale",
    "Measure",
    "NonWorkingDay",
    "PeerGroup",
    "Region",
    "Service",
    "ServiceKind",
    "Standard",
    "Unit",
    "default_directory",
    "load_catalogues",
]
