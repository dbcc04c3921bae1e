from django.contrib import admin

from .models import ImportJob, Item, Label, Membership, Project


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "task_type", "overlap", "created_by", "created_at"]
    list_filter = ["task_type"]
    search_fields = ["name"]
    inlines = [LabelInline, MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "state", "is_gold", "annotation_count"]
    list_filter = ["state", "is_gold"]
    search_fields = ["external_id"]
    raw_id_fields = ["project", "import_job"]
    show_full_result_count = False  # counting 100k-row tables on every page is slow


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "original_name", "state", "rows_imported", "error_count", "created_at"]
    list_filter = ["state", "format"]
    raw_id_fields = ["project"]
