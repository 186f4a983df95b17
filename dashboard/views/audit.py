from django.http import Http404


def audit_trail(request):
    raise Http404
