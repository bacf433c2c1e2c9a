"""The admin's job form: kind as a choice, params as fields generated from the kind's JSON Schema
(with raw JSON as a fallback), the schedule as crontab or interval fields. Every check of
`definitions.job_validate` lands on its field as a form error."""

from __future__ import annotations

import zoneinfo

from django import forms

from jobs.errors import JobsError
from jobs.models import Job
from jobs.registry import JobKind, kind_find, kinds_for
from jobs.services import definitions

PARAM_PREFIX = "param__"
ON_DEMAND, CRONTAB, INTERVAL = "none", "crontab", "interval"
SCHEDULE_CHOICES = [(ON_DEMAND, "On demand only"), (CRONTAB, "Crontab"), (INTERVAL, "Every N seconds")]


class LinesField(forms.CharField):
    """A list of strings, one per line (blank lines ignored)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        text = super().to_python(value)
        return [line.strip() for line in text.splitlines() if line.strip()]


def _param_field(schema: dict, *, required: bool) -> forms.Field:
    """A form field for one property of a params schema; anything richer is edited as JSON."""
    kind = schema.get("type")
    common = {"required": required, "help_text": schema.get("description", "")}
    items = schema.get("items") or {}
    if kind == "array" and "enum" in items:
        return forms.MultipleChoiceField(choices=[(str(v), str(v)) for v in items["enum"]],
                                         widget=forms.CheckboxSelectMultiple, **common)
    if kind == "array" and items.get("type") == "string":
        return LinesField(**{**common, "help_text": f"{common['help_text']} One per line.".strip()})
    if "enum" in schema:
        choices = [("", "—")] * (not required) + [(str(v), str(v)) for v in schema["enum"]]
        return forms.TypedChoiceField(choices=choices, coerce=type(schema["enum"][0]), **common)
    if kind == "integer":
        return forms.IntegerField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **common)
    if kind == "number":
        return forms.FloatField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **common)
    if kind == "boolean":
        return forms.BooleanField(required=False, help_text=common["help_text"])
    if kind == "string":
        return forms.CharField(max_length=schema.get("maxLength"), **common)
    return forms.JSONField(**common)


def _schedule_fields(schedule: dict | None) -> dict:
    if not schedule:
        return {"schedule_type": ON_DEMAND}
    if "crontab" in schedule:
        return {"schedule_type": CRONTAB, "crontab": schedule["crontab"], "timezone": schedule.get("timezone", "UTC")}
    return {"schedule_type": INTERVAL, "every_seconds": schedule.get("every_seconds")}


class OptionalJSONField(forms.JSONField):
    """Empty when there is nothing, rather than the text "null"."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class JobAdminForm(forms.ModelForm):
    schedule_type = forms.ChoiceField(choices=SCHEDULE_CHOICES, initial=ON_DEMAND, label="Schedule")
    crontab = forms.CharField(required=False, help_text='minute hour day-of-month month day-of-week, e.g. "0 3 * * *"')
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in sorted(zoneinfo.available_timezones())],
                                 initial="UTC", required=False)
    every_seconds = forms.IntegerField(required=False, min_value=1, max_value=definitions.SCHEDULE_MAX_EVERY_SECONDS,
                                       label="Every (seconds)")
    params_json = OptionalJSONField(required=False, label="Params (JSON)",
                                  help_text="Used as it is when the kind's params have no fields above; "
                                            "otherwise keys given here are added to theirs.")

    # Set by `job_admin_form`: the kind the param fields were made for, and who is editing.
    spec: JobKind | None = None
    actor = None

    class Meta:
        model = Job
        fields = ["name", "kind", "owner", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job = self.instance
        if job.pk:
            self.fields["kind"].disabled = True
            self.initial.update(_schedule_fields(job.schedule))
            params = dict(job.params or {})
            for name in self._param_names():
                if name in params:
                    self.initial[PARAM_PREFIX + name] = params.pop(name)
            self.initial["params_json"] = params or None

    def _param_names(self) -> list[str]:
        return [name[len(PARAM_PREFIX):] for name in self.fields if name.startswith(PARAM_PREFIX)]

    def _schedule(self) -> dict | None:
        data = self.cleaned_data
        chosen = data.get("schedule_type")
        # A value typed into another schedule's field would be dropped without a word: say so on it.
        # (A value left from before, on a job switched to another schedule, is what the switch drops.)
        names = dict(SCHEDULE_CHOICES)
        for field, schedule_type in (("crontab", CRONTAB), ("every_seconds", INTERVAL)):
            if chosen in names and chosen != schedule_type and data.get(field) not in (None, "") \
                    and field in self.changed_data:
                self.add_error(field, f"Schedule is “{names[chosen]}”: choose “{names[schedule_type]}” to use "
                                      "this, or clear it.")
        if chosen == CRONTAB:
            if not data.get("crontab"):
                self.add_error("crontab", "Give a crontab, or choose another schedule.")
            return {"crontab": data.get("crontab") or "", "timezone": data.get("timezone") or "UTC"}
        if chosen == INTERVAL:
            if not data.get("every_seconds"):
                self.add_error("every_seconds", "Give the interval in seconds, or choose another schedule.")
            return {"every_seconds": data.get("every_seconds") or 0}
        return None

    def _params(self) -> dict:
        params = {}
        for name in self._param_names():
            value = self.cleaned_data.get(PARAM_PREFIX + name)
            if value not in (None, "", []):
                params[name] = value
        extra = self.cleaned_data.get("params_json")
        if extra not in (None, ""):
            if not isinstance(extra, dict):
                self.add_error("params_json", "Params must be a JSON object.")
            else:
                params.update(extra)
        return params

    def clean(self):
        """Every problem on the first submit: the fields' own errors, and the service's checks of
        everything else (job_validate is told which inputs the form refused already)."""
        cleaned = super().clean()
        schedule = self._schedule()
        params = self._params()
        if not cleaned.get("kind"):
            return cleaned
        refused = {self._input_for(name): ["refused by the form"] for name in self.errors}
        try:
            checked = definitions.job_validate(
                name=cleaned.get("name", ""), kind=cleaned["kind"], params=params, schedule=schedule,
                owner=cleaned.get("owner"), actor=self.actor, job=self.instance if self.instance.pk else None,
                refused=refused)
        except JobsError as exc:
            for field, messages in exc.problems.items():
                if field in refused:
                    continue  # on its form field already
                for message in messages:
                    self.add_error(self._field_for(field), message)
            return cleaned
        cleaned["params"], cleaned["schedule"] = checked["params"], checked["schedule"]
        return cleaned

    def _input_for(self, form_field: str) -> str:
        """The service's name for what a form field holds (the inverse of _field_for)."""
        if form_field.startswith(PARAM_PREFIX):
            return "params." + form_field[len(PARAM_PREFIX):]
        if form_field == "params_json":
            return "params"
        if form_field in ("crontab", "timezone", "every_seconds", "schedule_type"):
            return "schedule"
        return form_field

    def _field_for(self, error_field: str | None) -> str | None:
        """The form field a service error names ("params.steps" → the steps field, "schedule" → the
        field of the chosen schedule type)."""
        if error_field == "schedule":
            return {CRONTAB: "crontab", INTERVAL: "every_seconds"}.get(self.cleaned_data.get("schedule_type"))
        if error_field and error_field.startswith("params"):
            name = error_field.split(".")[1] if "." in error_field else ""  # params.formats.0 → formats
            return PARAM_PREFIX + name if PARAM_PREFIX + name in self.fields else "params_json"
        return error_field if error_field in self.fields else None


def job_admin_form(*, kind: str | None, actor) -> type[JobAdminForm]:
    """The form for a job of `kind` (None: not chosen yet, the params come as JSON)."""
    allowed = kinds_for(user=actor)
    spec = kind_find(kind) if kind else None
    attrs: dict = {"spec": spec, "actor": actor}
    # The kind's name alone in the list (its description beside every name ran the select off a
    # laptop's screen); the chosen kind's description is the field's help.
    attrs["kind"] = forms.ChoiceField(
        choices=[("", "— choose a kind —")] + [(k.kind, k.kind) for k in allowed],
        initial=kind,
        help_text=spec.description if spec else "Choosing a kind shows the fields of its params; what was "
                                                 "typed so far is kept.",
    )
    if spec is not None:
        schema = spec.params_schema or {}
        required = set(schema.get("required", []))
        for name, prop in (schema.get("properties") or {}).items():
            attrs[PARAM_PREFIX + name] = _param_field(prop, required=name in required)
            attrs[PARAM_PREFIX + name].label = f"Param: {name}"
    return type("JobAdminFormFor", (JobAdminForm,), attrs)


def schedule_summary(schedule: dict | None) -> str:
    if not schedule:
        return "on demand"
    if "crontab" in schedule:
        return f"cron {schedule['crontab']} ({schedule.get('timezone', 'UTC')})"
    return f"every {schedule['every_seconds']} s"

