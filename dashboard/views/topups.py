from django.http import Http404


def key_topup(request, sub_key_id):
    raise Http404


def ledger(request):
    raise Http404


ledger_csv = ledger
