from django.http import Http404


def key_list(request):
    raise Http404


key_create = key_list


def key_detail(request, sub_key_id):
    raise Http404


key_edit = key_reveal = key_delete = key_detail
