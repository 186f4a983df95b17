"""URL converters: a Client Key's upstream id is a UUID, so anything else is a 404 without asking derouter."""


class SubKeyIdConverter:
    regex = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return str(value)
