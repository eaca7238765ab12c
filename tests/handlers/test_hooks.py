"""handlers.hooks: the registry, the @on decorator and the engagehook.hooks entry points."""

from __future__ import annotations

import sys

import pytest

from handlers.events import EVENT_TYPES
from handlers.hooks import HookConflict
from handlers.hooks import HookRegistrationError
from handlers.hooks import HookRegistry
from handlers.hooks import UnknownEventType
from tests.handlers.builders import install_package


def crm_sync(event):
    """A hook for the tests (a module-level function has a stable name)."""


def send_mail(event):
    """Another hook for the tests."""


@pytest.fixture
def registry():
    return HookRegistry()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path for throwaway packages; their modules are forgotten after."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name.startswith("ehtest_"):
            del sys.modules[name]


class TestRegistry:
    def test_decorated_function_is_named_and_found_for_its_types(self, registry):
        registry.on("CANCEL", "COMPLETE")(crm_sync)
        name = f"{__name__}:crm_sync"
        assert registry.names_for("CANCEL") == [name]
        assert registry.names_for("COMPLETE") == [name]
        assert registry.names_for("CREATE") == []
        assert registry.get(name) is crm_sync

    def test_decorator_returns_the_function_unchanged(self, registry):
        assert registry.on("CANCEL")(crm_sync) is crm_sync

    def test_star_registers_for_every_event_type(self, registry):
        registry.on("*")(crm_sync)
        assert all(registry.names_for(t) for t in EVENT_TYPES)

    def test_hooks_run_in_registration_order_without_repeats(self, registry):
        registry.on("CANCEL")(send_mail)
        registry.on("CANCEL")(crm_sync)
        registry.on("CANCEL")(send_mail)
        assert registry.names_for("CANCEL") == [f"{__name__}:send_mail", f"{__name__}:crm_sync"]

    @pytest.mark.parametrize("event_type", ["CANCELLED", "cancel", "TELEPORT", ""])
    def test_unknown_event_type_is_refused_with_the_valid_ones_named(self, registry, event_type):
        with pytest.raises(UnknownEventType, match="use one of ACCEPT, REASSIGN"):
            registry.on(event_type)(crm_sync)
        assert registry.get(f"{__name__}:crm_sync") is None

    def test_one_bad_type_registers_nothing(self, registry):
        with pytest.raises(UnknownEventType):
            registry.on("CANCEL", "NOPE")(crm_sync)
        assert registry.names_for("CANCEL") == []

    def test_decorator_without_event_type_is_refused(self, registry):
        with pytest.raises(UnknownEventType, match="at least one eventType"):
            registry.on()

    def test_two_functions_under_one_name_are_refused(self, registry):
        def make():
            def hook(event):
                return None

            return hook

        registry.on("CANCEL")(make())
        with pytest.raises(HookConflict, match="rename one"):
            registry.on("COMPLETE")(make())


class TestEntryPoints:
    def test_function_entry_point_runs_for_the_event_type_it_is_named_after(self, registry, site):
        install_package(
            site,
            "ehtest-crm",
            {"CANCEL": "ehtest_crm:on_cancel"},
            {"ehtest_crm": "def on_cancel(event):\n    pass\n"},
        )
        registry.load()
        assert registry.names_for("CANCEL") == ["ehtest_crm:on_cancel"]
        assert registry.names_for("CREATE") == []

    def test_star_entry_point_runs_for_every_event_type(self, registry, site):
        install_package(
            site,
            "ehtest-all",
            {"*": "ehtest_all:audit"},
            {"ehtest_all": "def audit(event):\n    pass\n"},
        )
        registry.load()
        assert all(registry.names_for(t) == ["ehtest_all:audit"] for t in EVENT_TYPES)

    def test_module_entry_point_registers_through_its_decorators(self, registry, site, monkeypatch):
        import handlers.hooks

        # The module decorates with the package-level ``on``; point it at this registry.
        monkeypatch.setattr(handlers.hooks, "on", registry.on)
        install_package(
            site,
            "ehtest-mod",
            {"anything": "ehtest_mod"},
            {
                "ehtest_mod": """
            from handlers.hooks import on

            @on("REOPEN")
            def reopened(event):
                pass
        """
            },
        )
        registry.load()
        assert registry.names_for("REOPEN") == ["ehtest_mod:reopened"]

    def test_function_entry_point_with_a_name_that_is_no_event_type_is_refused(
        self, registry, site
    ):
        install_package(
            site,
            "ehtest-bad",
            {"crm": "ehtest_bad:sync"},
            {"ehtest_bad": "def sync(event):\n    pass\n"},
        )
        with pytest.raises(UnknownEventType, match="name it after an eventType"):
            registry.load()

    def test_configured_modules_are_imported(self, registry, site, monkeypatch):
        import handlers.hooks

        monkeypatch.setattr(handlers.hooks, "on", registry.on)
        (site / "ehtest_configured.py").write_text(
            "from handlers.hooks import on\n\n@on('ACCEPT')\ndef accepted(event):\n    pass\n"
        )
        registry.load(["ehtest_configured"])
        assert registry.names_for("ACCEPT") == ["ehtest_configured:accepted"]


class TestMistakesFailAtRegistration:
    def test_on_without_parentheses_is_refused_with_the_fix(self, registry):
        with pytest.raises(HookRegistrationError, match=r'write @on\("CANCEL"\).*crm_sync'):
            registry.on(crm_sync)
        assert registry.describe() == "no user hooks loaded"

    def test_bare_on_in_a_hook_module_stops_the_load(self, registry, site, monkeypatch):
        import handlers.hooks

        monkeypatch.setattr(handlers.hooks, "on", registry.on)
        (site / "ehtest_bare.py").write_text(
            "from handlers.hooks import on\n\n@on\ndef cancelled(event):\n    pass\n"
        )
        with pytest.raises(HookRegistrationError, match="in parentheses"):
            registry.load(["ehtest_bare"])

    def test_function_that_cannot_take_the_event_is_refused(self, registry):
        def no_arguments():
            return None

        def two_arguments(event, ctx):
            return None

        for fn in (no_arguments, two_arguments):
            with pytest.raises(HookRegistrationError, match="one argument"):
                registry.on("CANCEL")(fn)

    def test_generator_function_is_refused(self, registry):
        def streaming(event):
            yield event

        with pytest.raises(HookRegistrationError, match="generator"):
            registry.on("CANCEL")(streaming)

    def test_async_hook_is_accepted(self, registry):
        async def notify(event):
            return None

        assert registry.on("CANCEL")(notify) is notify
        assert registry.names_for("CANCEL") == [f"{__name__}:{notify.__qualname__}"]

    def test_non_string_event_type_is_refused(self, registry):
        with pytest.raises(UnknownEventType, match="eventType strings"):
            registry.on(42)


class TestDescribe:
    def test_one_line_lists_each_hook_with_its_event_types(self, registry):
        registry.on("CANCEL", "COMPLETE")(crm_sync)
        registry.on("*")(send_mail)
        assert registry.describe() == (
            f"2 user hook(s) loaded: {__name__}:crm_sync (CANCEL, COMPLETE); "
            f"{__name__}:send_mail (*)"
        )
