from django.http import Http404


def usage_logs(request):
    raise Http404
