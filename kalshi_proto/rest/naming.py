"""What the OpenAPI files cannot say: facade names and irregular pagination.

`scripts/generate.py` reads these tables. Every other fact about an operation (method, path,
parameters, models, auth) comes from the spec files themselves.

``FACADE_NAMES`` maps each ``operationId`` to the dotted attribute path on a client:
``"GetMarkets": "markets.list"`` makes ``client.markets.list(...)``. A paginated operation also
gets a twin named ``<method>_all`` (``client.markets.list_all(...)``) that walks every page.
An operation missing from this table gets ``<tag>.<snake_case operationId>`` so that a new
endpoint in the spec is reachable after one generator run; name it here when you notice it.
"""

from __future__ import annotations

from typing import Final

FACADE_NAMES: Final[dict[str, str]] = {
    # exchange
    "GetExchangeStatus": "exchange.status",
    "GetExchangeSchedule": "exchange.schedule",
    "GetUserDataTimestamp": "exchange.user_data_timestamp",
    # series and markets
    "GetSeriesFeeChanges": "series.fee_changes",
    "GetSeries": "series.get",
    "GetSeriesList": "series.list",
    "GetMarkets": "markets.list",
    "GetMarket": "markets.get",
    "GetMarketOrderbook": "markets.orderbook",
    "GetMarketOrderbooks": "markets.orderbooks",
    "GetMarketCandlesticks": "markets.candlesticks",
    "BatchGetMarketCandlesticks": "markets.batch_candlesticks",
    "GetTrades": "markets.trades",
    # events
    "GetEvents": "events.list",
    "GetEvent": "events.get",
    "GetEventMetadata": "events.metadata",
    "GetMultivariateEvents": "events.multivariate",
    "GetEventFeeChanges": "events.fee_changes",
    "GetMarketCandlesticksByEvent": "events.candlesticks",
    "GetEventForecastPercentilesHistory": "events.forecast_percentile_history",
    # orders
    "GetOrders": "orders.list",
    "GetOrder": "orders.get",
    "GetOrderQueuePositions": "orders.queue_positions",
    "GetOrderQueuePosition": "orders.queue_position",
    "CreateOrderV2": "orders.create_v2",
    "AmendOrderV2": "orders.amend_v2",
    "DecreaseOrderV2": "orders.decrease_v2",
    "CancelOrderV2": "orders.cancel_v2",
    "CancelAllOrders": "orders.cancel_all",
    "BatchCreateOrdersV2": "orders.batch_create_v2",
    "BatchCancelOrdersV2": "orders.batch_cancel_v2",
    # order groups
    "GetOrderGroups": "order_groups.list",
    "CreateOrderGroup": "order_groups.create",
    "GetOrderGroup": "order_groups.get",
    "DeleteOrderGroup": "order_groups.delete",
    "ResetOrderGroup": "order_groups.reset",
    "TriggerOrderGroup": "order_groups.trigger",
    "UpdateOrderGroupLimit": "order_groups.update_limit",
    # portfolio
    "GetBalance": "portfolio.balance",
    "GetPositions": "portfolio.positions",
    "GetSettlements": "portfolio.settlements",
    "GetFills": "portfolio.fills",
    "GetDeposits": "portfolio.deposits",
    "GetWithdrawals": "portfolio.withdrawals",
    "GetPortfolioRestingOrderTotalValue": "portfolio.resting_order_total_value",
    "IntraExchangeInstanceTransfer": "portfolio.create_intra_exchange_transfer",
    "GetIntraExchangeInstanceTransfers": "portfolio.intra_exchange_transfers",
    "GetIntraExchangeInstanceTransfer": "portfolio.intra_exchange_transfer",
    "GetTargetBalanceAllocation": "portfolio.target_balance_allocation",
    "SetTargetBalanceAllocation": "portfolio.set_target_balance_allocation",
    # subaccounts
    "CreateSubaccount": "subaccounts.create",
    "ApplySubaccountTransfer": "subaccounts.transfer",
    "GetSubaccountBalances": "subaccounts.balances",
    "GetSubaccountTransfers": "subaccounts.transfers",
    "GetSubaccountNetting": "subaccounts.netting",
    "UpdateSubaccountNetting": "subaccounts.update_netting",
    # communications: block trades, RFQs, quotes
    "GetCommunicationsID": "communications.id",
    "GetBlockTradeProposals": "block_trades.list",
    "ProposeBlockTrade": "block_trades.propose",
    "AcceptBlockTradeProposal": "block_trades.accept",
    "GetRFQs": "rfqs.list",
    "CreateRFQ": "rfqs.create",
    "GetRFQ": "rfqs.get",
    "DeleteRFQ": "rfqs.delete",
    "GetRFQQuote": "rfqs.get_quote",
    "DeleteRFQQuote": "rfqs.delete_quote",
    "AcceptRFQQuote": "rfqs.accept_quote",
    "ConfirmRFQQuote": "rfqs.confirm_quote",
    "GetQuotes": "quotes.list",
    "CreateQuote": "quotes.create",
    "GetQuote": "quotes.get",
    "DeleteQuote": "quotes.delete",
    "AcceptQuote": "quotes.accept",
    "ConfirmQuote": "quotes.confirm",
    # api keys and account
    "GetApiKeys": "api_keys.list",
    "CreateApiKey": "api_keys.create",
    "GenerateApiKey": "api_keys.generate",
    "DeleteApiKey": "api_keys.delete",
    "GetAccountApiLimits": "account.limits",
    "UpgradeAccountApiUsageLevel": "account.upgrade_api_usage_level",
    "GetAccountApiUsageLevelVolumeProgress": "account.api_usage_level_volume_progress",
    "GetAccountEndpointCosts": "account.endpoint_costs",
    # search, live data, targets, milestones
    "GetTagsForSeriesCategories": "search.tags_by_categories",
    "GetFiltersForSports": "search.filters_by_sport",
    "GetLiveDataByMilestone": "live_data.by_milestone",
    "GetLiveData": "live_data.get",
    "GetLiveDatas": "live_data.batch",
    "GetGameStats": "live_data.game_stats",
    "GetEventLiveData": "live_data.event",
    "GetWeatherIndex": "live_data.weather_index",
    "GetWeatherIndexCalibrations": "live_data.weather_index_calibrations",
    "GetStructuredTargets": "structured_targets.list",
    "GetStructuredTarget": "structured_targets.get",
    "GetMilestones": "milestones.list",
    "GetMilestone": "milestones.get",
    # multivariate collections
    "GetMultivariateEventCollections": "multivariate_collections.list",
    "GetMultivariateEventCollection": "multivariate_collections.get",
    "CreateMarketInMultivariateEventCollection": "multivariate_collections.create_market",
    # incentives
    "GetIncentivePrograms": "incentive_programs.list",
    # FCM
    "GetFCMFills": "fcm.fills",
    "GetFCMOrders": "fcm.orders",
    "GetFCMPositions": "fcm.positions",
    "ListFCMSubtraders": "fcm.subtraders",
    "CreateFCMSubtrader": "fcm.create_subtrader",
    "GetFCMEventContractDailyCap": "fcm.event_contract_daily_cap",
    "UpdateFCMEventContractDailyCap": "fcm.update_event_contract_daily_cap",
    "DeleteFCMEventContractDailyCap": "fcm.delete_event_contract_daily_cap",
    "GetFCMSubtraderBlockedCategories": "fcm.subtrader_blocked_categories",
    "UpdateFCMSubtraderBlockedCategories": "fcm.update_subtrader_blocked_categories",
    "CreateFCMPositionTransfer": "fcm.create_position_transfer",
    # historical
    "GetHistoricalCutoff": "historical.cutoff",
    "GetHistoricalMarkets": "historical.markets",
    "GetHistoricalMarket": "historical.market",
    "GetMarketCandlesticksHistorical": "historical.market_candlesticks",
    "GetFillsHistorical": "historical.fills",
    "GetHistoricalOrders": "historical.orders",
    "GetHistoricalPositions": "historical.positions",
    "GetTradesHistorical": "historical.trades",
}

#: Paginated responses with more than one list: the list that ``*_all`` walks. The other lists
#: stay on each page's ``.response``.
PRIMARY_ITEMS: Final[dict[str, str]] = {
    "GetEvents": "events",
    "GetPositions": "market_positions",
    "GetFCMPositions": "market_positions",
    "GetHistoricalPositions": "market_positions",
}

#: Response fields that carry the next cursor under another name than ``cursor``.
CURSOR_FIELDS: Final[dict[str, str]] = {
    "GetIncentivePrograms": "next_cursor",
}

#: Page-size query parameters named otherwise than ``limit``.
LIMIT_PARAMS: Final[dict[str, str]] = {
    "GetStructuredTargets": "page_size",
}
