"""Shared pieces of the management API: master-key authentication and serializers that refuse what is not asked for.

DRF's default fields coerce ("5" becomes 5, 1 becomes "1", "yes" becomes True); a gateway's operators deserve to be
told instead. These fields accept exactly the JSON type they name, and StrictSerializer refuses unknown fields.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.views import APIView

from accounts.auth import require_master
from gateway.errors import InvalidJSONError

# PositiveIntegerField columns are 4-byte integers on every backend; a larger value must be a 400, not a 500.
MAX_STORED_INT = 2**31 - 1


class MasterKeyApi(APIView):
    """Base of every management endpoint: the master key is required (SPEC §6: 401 without a key, 403 for others)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.grant = require_master(request._request)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "A number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A whole number is required."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", MAX_STORED_INT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictDictField(serializers.DictField):
    default_error_messages = {"not_a_dict": "Must be a JSON object."}


def model_list_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=StrictCharField(allow_blank=False), **kwargs)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, naming them."""

    def run_validation(self, data=serializers.empty):
        # SPEC §6: a body that is JSON but not an object is `invalid_json`, as on the relay.
        if not isinstance(data, dict):
            raise InvalidJSONError("The request body must be a JSON object.")
        return super().run_validation(data)

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: [f"Unknown field. Allowed fields: {', '.join(sorted(self.fields))}."]}
            )
        return super().to_internal_value(data)
