"""What the Settings page changes on the shared service: the savable settings, where each value comes from,
and saving new values so the service works with them at once. Knows nothing of Streamlit
(ui/settings_page.py draws)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rag.saved_settings import SAVABLE_FIELDS, Source
from rag.settings import Settings, load_settings_with_sources, save_settings
from ui.service import ArchivistService

SECRET_FIELDS = ("openai_api_key", "pdf_passwords")


@dataclass(frozen=True)
class SettingInfo:
    """One row of the Settings page: a savable setting, its value now, and where that value came from."""

    name: str
    value: object
    source: Source  # flag | environment | saved | default; flags and environment beat saved values
    description: str
    secret: bool = False  # show masked (an API key, passwords)


def setting_rows(service: ArchivistService) -> list[SettingInfo]:
    """The savable settings: the value in force, where it comes from, and what it means."""
    settings, sources = load_settings_with_sources(**service.flags)
    fields = type(settings).model_fields
    return [
        SettingInfo(name, getattr(settings, name), sources[name], fields[name].description or "",
                    secret=name in SECRET_FIELDS)
        for name in SAVABLE_FIELDS
    ]


def save_changes(service: ArchivistService, changes: Mapping[str, object]) -> Settings:
    """Save settings (a None value forgets one) and have the service use them from now on; returns the
    settings in force. Raises ConfigError naming the field when a value is invalid. Flags and environment
    still win."""
    # One change at a time, from saving to using: two saves at once must not leave the older one in force.
    with service.one_change():
        save_settings(service.settings.data_dir, changes)
        settings, _ = load_settings_with_sources(**service.flags)
        service.use_settings(settings)
        return settings
